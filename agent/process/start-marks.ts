import type { voice } from '@livekit/agents';
import { appendFileSync } from 'node:fs';

/**
 * Where a job process's start goes, for `npm run bench:job-start` (docs/benchmarks.md): with
 * AGENT_START_MARKS set to a file, each `startMark(phase)` appends one JSON line holding the pid,
 * the phase, the wall time and the CPU time (user + system, every thread) this process has used
 * since it started, both in ms. Unset (always, outside that bench), `startMark` is a function that
 * does nothing. Read from the environment here, not agent/config.ts: the first mark is taken
 * before any configuration is parsed, and this is a measurement switch, not a setting. The marks
 * are `modules-loaded` (job.ts's first line), `prewarm-start`/`-end`, `entry`, `session-started`
 * and `first-speech`; the first of all, `node-ready`, comes from the bench's preload
 * (test/bench/job-start-probe.mjs), in this same shape. `at` is epoch ms, to set the marks beside
 * what a caller saw.
 */
export type StartMark = { pid: number; phase: string; at: number; wallMs: number; cpuMs: number };

export function startMarksTo(file: string | undefined): (phase: string) => void {
  if (!file) return () => {};
  return (phase) => {
    const { user, system } = process.cpuUsage();
    // performance.now() counts from the process's own start (its time origin), as the CPU does.
    const wallMs = performance.now();
    const mark: StartMark = {
      pid: process.pid,
      phase,
      at: performance.timeOrigin + wallMs,
      wallMs,
      cpuMs: (user + system) / 1000,
    };
    // Appends of one short line each: the job processes of a host share the file safely.
    appendFileSync(file, `${JSON.stringify(mark)}\n`);
  };
}

const marksFile = process.env.AGENT_START_MARKS;
export const startMark = startMarksTo(marksFile);

/**
 * Marks `phase` the first time the agent starts speaking (its first audio: the greeting). Without
 * AGENT_START_MARKS (`mark` undefined) the session gets no listener at all.
 */
export function markFirstSpeech(
  session: Pick<voice.AgentSession, 'on' | 'off'>,
  phase: string,
  mark: ((phase: string) => void) | undefined = marksFile ? startMark : undefined,
): void {
  if (!mark) return;
  const event = 'agent_state_changed' as voice.AgentSessionEventTypes.AgentStateChanged;
  const onState = (ev: voice.AgentStateChangedEvent) => {
    if (ev.newState !== 'speaking') return;
    mark(phase);
    session.off(event, onState);
  };
  session.on(event, onState);
}
