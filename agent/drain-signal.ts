import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The worker (parent) tells its job processes that a deploy is draining it. agents-js gives no
 * parent-to-job channel and job processes ignore SIGTERM, so the parent writes the deadline to a
 * file named by its pid, and each job (whose ppid is that pid) polls for it during a call.
 */
function drainFile(workerPid: number): string {
  return join(tmpdir(), `livekit-voice-agent-drain-${workerPid}.json`);
}

export function announceDrain(deadlineMs: number, workerPid = process.pid): void {
  writeFileSync(drainFile(workerPid), JSON.stringify({ deadline: deadlineMs }));
}

export function clearDrain(workerPid = process.pid): void {
  rmSync(drainFile(workerPid), { force: true });
}

export function readDrainDeadline(workerPid = process.ppid): number | undefined {
  try {
    const { deadline } = JSON.parse(readFileSync(drainFile(workerPid), 'utf8')) as {
      deadline: number;
    };
    return Number.isFinite(deadline) ? deadline : undefined;
  } catch {
    return undefined;
  }
}

/** Polls for a drain and calls `onDeadline` when its deadline passes. Returns a stop function. */
export function watchDrain(
  onDeadline: () => void,
  { pollMs = 500, workerPid = process.ppid } = {},
): () => void {
  const timer = setInterval(() => {
    const deadline = readDrainDeadline(workerPid);
    if (deadline !== undefined && Date.now() >= deadline) {
      clearInterval(timer);
      onDeadline();
    }
  }, pollMs);
  timer.unref();
  return () => clearInterval(timer);
}
