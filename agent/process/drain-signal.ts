import { randomUUID } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../../wire-contract/index.ts';
import { logToStderr } from '../log.ts';

/**
 * The worker (parent) tells its job processes that a deploy is draining it. agents-js gives no
 * parent-to-job channel and job processes ignore SIGTERM, so the worker writes the deadline to a
 * file and each job polls it during a call. The path is chosen once per boot and handed to the
 * jobs in the environment they inherit, so a stale file from an earlier boot (even one with the
 * same pid) is never read. If the file cannot be written, the worker's own drain still runs: its
 * jobs end when agents-js asks them to shut down (job.ts listens for that request).
 */
export const DRAIN_FILE_ENV = 'AGENT_DRAIN_FILE';

/** Called once in the worker before jobs start: picks this boot's drain file. */
export function chooseDrainFile(env: NodeJS.ProcessEnv = process.env): string {
  const path = join(tmpdir(), `livekit-voice-agent-drain-${process.pid}-${randomUUID()}.json`);
  env[DRAIN_FILE_ENV] = path;
  return path;
}

/**
 * Writes the deadline (write, then rename: a job never reads half a file). Returns false, never
 * throws, when it cannot: a signal handler that throws would stop agents-js' own drain.
 */
export function announceDrain(deadlineMs: number, path = process.env[DRAIN_FILE_ENV]): boolean {
  if (!path) return false;
  const partial = `${path}.${process.pid}.partial`;
  try {
    writeFileSync(partial, JSON.stringify({ deadline: deadlineMs }));
    renameSync(partial, path);
    return true;
  } catch (err) {
    rmSync(partial, { force: true });
    logToStderr(
      'warn',
      'could not write the drain file; calls end when the worker shuts their jobs down',
      { path, error: errorMessage(err) },
    );
    return false;
  }
}

export function clearDrain(path = process.env[DRAIN_FILE_ENV]): void {
  if (!path) return;
  try {
    rmSync(path, { force: true });
  } catch {
    /* nothing to clear */
  }
}

export function readDrainDeadline(path = process.env[DRAIN_FILE_ENV]): number | undefined {
  if (!path) return undefined;
  try {
    const { deadline } = JSON.parse(readFileSync(path, 'utf8')) as { deadline: number };
    return Number.isFinite(deadline) ? deadline : undefined;
  } catch {
    return undefined;
  }
}

/** Polls for a drain and calls `onDeadline` when its deadline passes. Returns a stop function. */
export function watchDrain(
  onDeadline: () => void,
  { pollMs = 500, path = process.env[DRAIN_FILE_ENV] } = {},
): () => void {
  const timer = setInterval(() => {
    const deadline = readDrainDeadline(path);
    if (deadline !== undefined && Date.now() >= deadline) {
      clearInterval(timer);
      onDeadline();
    }
  }, pollMs);
  timer.unref();
  return () => clearInterval(timer);
}
