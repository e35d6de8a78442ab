import { readFileSync } from 'node:fs';
import { describe, expect, inject, it } from 'vitest';
import { CallClient } from '../support/call-client.ts';
import { waitFor } from '../support/processes.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { pidAlive } from '../support/system.ts';

/**
 * An operator must be able to trust a warning or an error line: a clean call (greeted, a goodbye,
 * ended by the agent, reported) leaves none in the agent's log. Two kinds are left out, by name:
 * agents-js's event-loop watchdog, which reports the machine (a busy CI box), not the call; and
 * the empty user turn agents-js 1.9 commits on every session close after draining
 * (voice/agent_session.js `commitUserTurn({ audioDetached: true })`), which it then logs as
 * skipped input. Any other warning, or that one with words in it, fails.
 */
const bin = inject('livekitServerBin');
const HOST_LOAD = /event loop blocked|process not scheduled/;
type LogLine = {
  level: number;
  msg: string;
  'lk.pii.user_input'?: string;
  err?: { type?: string };
};
// Not fixed yet (issue #16, part 5): agents-js's RoomIO publishes an agent-state change that races
// the room's deletion at the very end (an AbortError), in some runs. The finish step's wait for
// the state attribute removed most; this one is named, so anything else still fails.
const STATE_RACE = (l: LogLine) =>
  l.msg === 'Failed to update agent state attributes' && l.err?.type === 'DOMException';
const upstreamNoise = (l: LogLine) =>
  HOST_LOAD.test(l.msg) ||
  STATE_RACE(l) ||
  (l.msg === 'skipping user input, speech scheduling is paused' && l['lk.pii.user_input'] === '');
const system = systemForThisFile(bin);

describe.skipIf(!bin)("a clean call's agent log", () => {
  it('has no warning or error line, and no "goodbye cut"', async () => {
    const c = new CallClient();
    system.callers.push(c);
    await c.join(system.edge.url, '');
    await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
    await c.say('Thanks, that is all. Goodbye!');
    const call = await system.reportedCall(c.roomName);
    expect(call.end_reason).toBe('agent_end_call');
    const { pid } = system.hookMarker(c.roomName, 'ran')!;
    await waitFor('job exit', async () => !pidAlive(pid), { timeoutMs: 30_000, intervalMs: 50 });
    const [roomSid, jobId] = (call.report.call_id as string).split(':') as [string, string];
    const lines = readFileSync(system.agent.proc.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes(jobId) || l.includes(roomSid) || l.includes(c.roomName));
    expect(lines.length).toBeGreaterThan(0);
    const loud = lines
      .map((l) => JSON.parse(l) as LogLine)
      .filter((l) => l.level >= 40 && !upstreamNoise(l))
      .map((l) => `${l.level} ${l.msg}`);
    expect(loud).toEqual([]);
    expect(lines.filter((l) => l.includes('goodbye cut'))).toEqual([]);
  });
});
