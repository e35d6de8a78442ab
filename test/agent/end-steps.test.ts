import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { initializeLogger } from '@livekit/agents';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CallLifecycle } from '../../agent/call/lifecycle.ts';
import { loadAgentConfig } from '../../agent/config.ts';
import {
  CAPTION_FLUSH_MS,
  liveKitEndSteps,
  speakLine,
  type CallContext,
} from '../../agent/end-steps.ts';
import { END_REASON_VALUES, END_REASONS, type EndReason } from '../../wire-contract/index.ts';

// LiveKit faked at the Twirp boundary to see which operation each end mode uses; the e2e suite
// shows the same against the real server (call-endings.test.ts: the goodbye that deletes the room
// for everyone, and mode leave).
const twirp: string[] = [];
let url = '';
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    twirp.push(`${req.url?.split('/').pop()} ${body}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

function steps(
  endMode: 'end_for_all' | 'leave',
  {
    connected = true,
    session = undefined as FakeSession | undefined,
    realtime = false,
    stepTimeoutMs = 8_000,
    callerInRoom = false,
    started = true,
  } = {},
) {
  const calls: string[] = [];
  const room = {
    name: 'call-x',
    isConnected: connected,
    localParticipant: undefined,
    remoteParticipants: new Map(callerInRoom ? [['caller', {}]] : []),
    disconnect: async () => void calls.push('disconnect'),
  };
  const config = loadAgentConfig({
    LIVEKIT_URL: url,
    LIVEKIT_API_KEY: 'k',
    LIVEKIT_API_SECRET: 's',
    OPENAI_API_KEY: 'sk',
    END_STEP_TIMEOUT_MS: String(stepTimeoutMs),
  });
  const ctx = {
    room,
    job: { room: { name: 'call-x' } },
    info: { url, apiKey: 'k', apiSecret: 's' },
  } as unknown as CallContext['ctx'];
  return {
    s: liveKitEndSteps({
      ctx,
      session: () => session as unknown as ReturnType<CallContext['session']>,
      config,
      endMode,
      agentName: 'a',
      roomSid: () => 'RM',
      errors: [],
      realtime,
      started: () => started,
    }),
    calls,
    config,
  };
}

/**
 * The parts of an AgentSession the goodbye step uses. Each line it speaks plays out only when the
 * test says so (`playOut`), or never, like a hung TTS.
 */
class FakeSession {
  readonly spoken: { how: 'say' | 'generateReply'; text: string; allowInterruptions?: boolean }[] =
    [];
  readonly interrupts: unknown[] = [];
  #playouts: (() => void)[] = [];

  interrupt(opts: unknown) {
    this.interrupts.push(opts);
    return { await: Promise.resolve() };
  }
  say(text: string, opts: { allowInterruptions?: boolean } = {}) {
    this.spoken.push({ how: 'say', text, allowInterruptions: opts.allowInterruptions });
    return this.#handle();
  }
  generateReply(opts: { instructions: string; allowInterruptions?: boolean }) {
    this.spoken.push({
      how: 'generateReply',
      text: opts.instructions,
      allowInterruptions: opts.allowInterruptions,
    });
    return this.#handle();
  }
  /** Lets every line spoken so far finish playing. */
  playOut() {
    for (const done of this.#playouts.splice(0)) done();
  }
  #handle() {
    const played = new Promise<void>((r) => this.#playouts.push(r));
    return { waitForPlayout: () => played };
  }
}

/** Resolves to 'settled' if `p` settles within a few turns of the event loop, else 'pending'. */
async function state(p: Promise<unknown>): Promise<'settled' | 'pending'> {
  return Promise.race([
    p.then(() => 'settled' as const),
    new Promise<'pending'>((r) => setTimeout(() => r('pending'), 50)),
  ]);
}

// The contract's table (docs/lifecycle.md): these reasons say goodbye, no other does. Spelled out
// here, not read from the table, so a row losing its goodbye fails too.
const WITH_GOODBYE: EndReason[] = [
  'agent_leave',
  'agent_end_call',
  'max_duration',
  'idle_timeout',
  'drain',
];
const WITHOUT_GOODBYE = END_REASON_VALUES.filter((r) => !WITH_GOODBYE.includes(r));

describe('the goodbye step', () => {
  beforeAll(() => initializeLogger({ pretty: false, level: 'fatal' }));
  beforeEach(() => {
    twirp.length = 0;
  });

  it.each(WITH_GOODBYE)(
    "%s: says exactly its row's goodbye, uninterruptible, and waits for it to play out",
    async (reason) => {
      const goodbye = END_REASONS[reason].goodbye;
      expect(goodbye).toEqual(expect.stringMatching(/\S/));
      const session = new FakeSession();
      const { s } = steps('end_for_all', { session });
      const said = s.sayGoodbye(reason);
      expect(await state(said)).toBe('pending');
      expect(session.spoken).toEqual([{ how: 'say', text: goodbye, allowInterruptions: false }]);
      // It cut in over whatever was playing first, rather than queueing behind it.
      expect(session.interrupts).toEqual([{ force: true }]);
      session.playOut();
      expect(await state(said)).toBe('settled');
      expect(session.spoken).toHaveLength(1);
    },
  );

  it.each(WITHOUT_GOODBYE)('%s: says nothing', async (reason) => {
    expect(END_REASONS[reason].goodbye).toBeNull();
    const session = new FakeSession();
    const { s } = steps('end_for_all', { session });
    expect(await state(s.sayGoodbye(reason))).toBe('settled');
    expect(session.spoken).toEqual([]);
  });

  it('a realtime model is asked to say exactly the line', async () => {
    const session = new FakeSession();
    const { s } = steps('end_for_all', { session, realtime: true });
    const said = s.sayGoodbye('drain');
    expect(await state(said)).toBe('pending');
    expect(session.spoken).toEqual([
      {
        how: 'generateReply',
        text: `Say exactly this and nothing else: "${END_REASONS.drain.goodbye}"`,
        allowInterruptions: false,
      },
    ]);
    session.playOut();
    expect(await state(said)).toBe('settled');
  });

  it.each(['max_duration', 'idle_timeout', 'drain'] as const)(
    '%s through the lifecycle: the goodbye is spoken before the room is deleted, and one that never plays out (a hung TTS) is cut at END_STEP_TIMEOUT_MS',
    async (reason) => {
      const session = new FakeSession();
      // The same bound covers the finish step, which waits out a 500 ms caption flush first.
      const { s, config } = steps('end_for_all', { session, stepTimeoutMs: 1_000 });
      const lifecycle = new CallLifecycle({
        room: 'call-x',
        jobId: 'AJ_x',
        cleanupBudgetMs: 1_000,
        reportReserveMs: 500,
        stepTimeoutMs: config.END_STEP_TIMEOUT_MS,
        defaultHookTimeoutMs: 500,
        log: () => {},
      });
      lifecycle.attach(s);
      const started = Date.now();
      await lifecycle.end(reason); // the playout never comes: the step bound ends the wait
      const took = Date.now() - started;
      expect(session.spoken.map((l) => l.text)).toEqual([END_REASONS[reason].goodbye]);
      expect(took).toBeGreaterThanOrEqual(1_000 - 5);
      expect(took).toBeLessThan(10_000); // 1 s goodbye bound + 0.5 s caption flush, with margin
      expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
    },
  );

  it("waits for the model's own end_call goodbye before deleting the room, and says no second one", async () => {
    const session = new FakeSession();
    const { s, config } = steps('end_for_all', { session });
    const lifecycle = new CallLifecycle({
      room: 'call-x',
      jobId: 'AJ_x',
      cleanupBudgetMs: 1_000,
      reportReserveMs: 500,
      stepTimeoutMs: config.END_STEP_TIMEOUT_MS,
      defaultHookTimeoutMs: 500,
      log: () => {},
    });
    lifecycle.attach(s);
    let played!: () => void;
    const modelGoodbye = new Promise<void>((r) => (played = r));
    const ended = lifecycle.end('agent_end_call', { afterSpeech: modelGoodbye });
    // Longer than the caption flush before DeleteRoom: the room would be gone by now.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(twirp).toEqual([]);
    expect(await state(ended)).toBe('pending');
    played();
    await ended;
    expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
    expect(session.spoken).toEqual([]);
  });
});

describe('ending by mode', () => {
  beforeEach(() => {
    twirp.length = 0;
  });

  it('end_for_all deletes the room', async () => {
    const forAll = steps('end_for_all');
    await forAll.s.finish('max_duration');
    expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
    expect(forAll.calls).toEqual([]);
  });

  it('an error in end_for_all mode deletes the room, so the caller is not left alone with no agent', async () => {
    const { s, calls } = steps('end_for_all');
    await s.finish('error');
    expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
    expect(calls).toEqual([]);
  });

  it('an error in leave mode only disconnects the agent', async () => {
    const { s, calls } = steps('leave');
    await s.finish('error');
    expect(twirp).toEqual([]);
    expect(calls).toEqual(['disconnect']);
  });

  it('deletes the room even when the agent never connected (the call failed during setup)', async () => {
    const { s } = steps('end_for_all', { connected: false });
    await s.finish('error');
    expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
  });

  it.each(['error', 'drain'] as const)(
    'a %s end during setup deletes the room in leave mode too: the agent never joined, and the caller would wait alone for it',
    async (reason) => {
      const { s, calls } = steps('leave', { connected: false, started: false });
      await s.finish(reason);
      expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
      expect(calls).toEqual([]);
    },
  );

  it('an error during setup with the agent already in the room (a hooks module connected it) deletes the room in leave mode too', async () => {
    const { s, calls } = steps('leave', { connected: true, started: false, callerInRoom: true });
    await s.finish('error');
    expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
    expect(calls).toEqual([]);
  });

  it('during setup, an end the API or the room decided keeps to its own row (no delete of its own)', async () => {
    for (const reason of ['api_end_call', 'api_remove_agent', 'room_deleted'] as const) {
      await steps('leave', { connected: false, started: false }).s.finish(reason);
    }
    expect(twirp).toEqual([]);
  });

  it('leave only disconnects the agent', async () => {
    const leave = steps('leave');
    await leave.s.finish('max_duration');
    await leave.s.finish('agent_leave');
    expect(twirp).toEqual([]);
    expect(leave.calls).toEqual(['disconnect', 'disconnect']);
  });

  it('with the caller still there, the agent leaves only once the goodbye caption has had time to go out', async () => {
    vi.useFakeTimers();
    try {
      const { s, calls } = steps('leave', { callerInRoom: true });
      const finished = s.finish('agent_leave');
      await vi.advanceTimersByTimeAsync(CAPTION_FLUSH_MS - 1);
      expect(calls).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      await finished;
      expect(calls).toEqual(['disconnect']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('when the API ended the call (the room is being deleted), the agent only leaves', async () => {
    const { s, calls } = steps('end_for_all');
    await s.finish('api_end_call');
    expect(twirp).toEqual([]);
    expect(calls).toEqual(['disconnect']);
  });

  it('when the user hung up, end_for_all deletes the room (no rejoin into the ended call) and leave only leaves', async () => {
    await steps('end_for_all').s.finish('participant_left');
    expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
    const leave = steps('leave');
    await leave.s.finish('participant_left');
    expect(twirp).toHaveLength(1);
    expect(leave.calls).toEqual(['disconnect']);
  });
});

describe('speaking a fixed line', () => {
  beforeAll(() => initializeLogger({ pretty: false, level: 'fatal' }));

  it('returns nothing instead of throwing when the session is already closing', () => {
    const closing = {
      say: () => {
        throw new Error('AgentSession is closing, cannot use say()');
      },
      generateReply: () => {
        throw new Error('AgentSession is closing, cannot use generateReply()');
      },
    } as unknown as Parameters<typeof speakLine>[0];
    expect(speakLine(closing, 'Are you still there?', false)).toBeUndefined();
    expect(speakLine(closing, 'Are you still there?', true)).toBeUndefined();
  });
});
