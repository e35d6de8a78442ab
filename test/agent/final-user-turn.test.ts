import { initializeLogger, voice } from '@livekit/agents';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadAgentConfig } from '../../agent/config.ts';
import { skipEmptyFinalUserTurn } from '../../agent/voice/final-user-turn.ts';
import { sessionModels } from '../../agent/voice/models.ts';
import { startOpenAIStandIn, type StandIn } from '../support/openai-stand-in.ts';

// A real AgentSession with the job's own text-only models (the e2e suite's; a realtime model has no
// STT either), started without a room: what agents-js does when it closes.
let standIn: StandIn;
beforeAll(async () => {
  initializeLogger({ pretty: false, level: 'warn' });
  standIn = await startOpenAIStandIn();
});
afterAll(() => standIn.close());

async function textOnlySession() {
  const config = loadAgentConfig({
    LIVEKIT_URL: 'ws://127.0.0.1:7880',
    LIVEKIT_API_KEY: 'k',
    LIVEKIT_API_SECRET: 's',
    OPENAI_API_KEY: 'sk-local',
    OPENAI_BASE_URL: standIn.url,
    AGENT_AUDIO_INPUT: 'false',
  });
  const session = new voice.AgentSession(sessionModels(config, {}));
  await session.start({ agent: new voice.Agent({ instructions: 'Be brief.' }) });
  return session;
}

/** The agents-js log lines at warn or above written while `work` runs. */
async function warningsDuring(work: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: unknown) => {
    for (const line of String(chunk).split('\n').filter(Boolean)) {
      try {
        const parsed = JSON.parse(line) as { level: number; msg: string };
        if (parsed.level >= 40) lines.push(parsed.msg);
      } catch {
        write(line + '\n');
      }
    }
    return true;
  }) as typeof process.stdout.write);
  try {
    await work();
  } finally {
    spy.mockRestore();
  }
  return lines;
}

const SKIPPED = 'skipping user input, speech scheduling is paused';

describe('the user turn agents-js commits when a session without an STT closes', () => {
  it('pinned: closing calls the running activity’s commitUserTurn({ audioDetached: true }), which logs an empty turn as skipped input', async () => {
    const session = await textOnlySession();
    const activity = session._activity!;
    expect(activity).toBeDefined();
    expect(activity.stt).toBeUndefined(); // text-only: no STT, so the turn can hold no words
    const commits = vi.spyOn(activity, 'commitUserTurn');
    const warned = await warningsDuring(() => session.close());
    expect(commits).toHaveBeenCalledWith({ audioDetached: true, throwIfNotReady: false });
    // If an upgrade stops logging this, agent/voice/final-user-turn.ts can go.
    expect(warned).toEqual([SKIPPED]);
  });

  it('is skipped once the job has started the session: the close logs nothing', async () => {
    const session = await textOnlySession();
    skipEmptyFinalUserTurn(session); // as agent/job.ts does after session.start
    expect(await warningsDuring(() => session.close())).toEqual([]);
  });

  it('leaves a session with an STT alone (agents-js skips an empty turn itself; words still reach the history)', () => {
    const commitUserTurn = () => {};
    const activity = { stt: {}, commitUserTurn };
    skipEmptyFinalUserTurn({ _activity: activity } as unknown as voice.AgentSession);
    expect(activity.commitUserTurn).toBe(commitUserTurn);
  });

  it('still lets a turn be committed on request (the public session.commitUserTurn)', () => {
    const calls: unknown[] = [];
    const activity = { commitUserTurn: (o?: unknown) => void calls.push(o ?? {}) };
    skipEmptyFinalUserTurn({ _activity: activity } as unknown as voice.AgentSession);
    activity.commitUserTurn();
    activity.commitUserTurn({ audioDetached: true, throwIfNotReady: false });
    expect(calls).toEqual([{}]);
  });
});
