import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../../wire-contract/index.ts';
import { logToStderr } from '../log.ts';

/**
 * A job process tells its worker that it has started its job. agents-js tells the worker nothing
 * when a job starts or ends: the worker sees its jobs only when it looks at `activeJobs`, which the
 * call cap does at each load report (every 2.5 s) and each job request. A short call that starts
 * and ends between two looks is never seen, and the cap could not tell it from one still waiting
 * for its process (process/capacity.ts). agents-js lists a job from before its process starts it
 * until that process has exited (pinned by test/agent/call-capacity-contract.test.ts), so a job
 * that has started and is not listed has ended.
 *
 * The same directory carries a second mark, `<job id>.greeted`, once the job's agent first speaks:
 * /metrics splits the cap's calls into starting (not greeted yet) and running by it.
 *
 * As with the drain file (process/drain-signal.ts), the worker chooses a directory once per boot
 * and hands it to its job processes in the environment they inherit; each job's entry leaves an
 * empty file there named after its job id, and the worker removes it once it has read it. Without
 * the directory (no cap, `console` mode, one that could not be made) nothing is written and the
 * cap falls back on its grace.
 */
export const JOB_STARTS_DIR_ENV = 'AGENT_JOB_STARTS_DIR';

/** LiveKit's job ids (`AJ_…`); anything else is never made into a path. */
export const JOB_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** The greeting mark's suffix, after the job id. */
const GREETED = '.greeted';

/** Called once in the worker, before its pool forks a job process. */
export function chooseJobStartsDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    const dir = mkdtempSync(join(tmpdir(), `livekit-voice-agent-jobs-${process.pid}-`));
    env[JOB_STARTS_DIR_ENV] = dir;
    return dir;
  } catch (err) {
    logToStderr(
      'warn',
      'could not make the job starts directory; the call cap frees a short call only after its grace',
      { error: errorMessage(err) },
    );
    return undefined;
  }
}

/** Called by a job process as its entry starts. Never throws: the call goes on regardless. */
export function markJobStarted(jobId: string, dir = process.env[JOB_STARTS_DIR_ENV]): void {
  if (!dir || !JOB_ID.test(jobId)) return;
  try {
    writeFileSync(join(dir, jobId), '');
  } catch {
    /* the cap's grace frees this call's place instead */
  }
}

/** Called by a job process once its agent first speaks (the greeting). Never throws. */
export function markJobGreeted(jobId: string, dir = process.env[JOB_STARTS_DIR_ENV]): void {
  if (!dir || !JOB_ID.test(jobId)) return;
  try {
    writeFileSync(join(dir, `${jobId}${GREETED}`), '');
  } catch {
    /* the call counts as starting in /metrics until it ends: nothing else depends on it */
  }
}

/** In the worker: whether `jobId`'s agent has greeted its caller. */
export function jobGreeted(jobId: string, dir: string | undefined): boolean {
  return !!dir && JOB_ID.test(jobId) && existsSync(join(dir, `${jobId}${GREETED}`));
}

/** In the worker, once `jobId` has ended: whatever marks it left go. */
export function forgetJob(jobId: string, dir: string | undefined): void {
  if (!dir || !JOB_ID.test(jobId)) return;
  for (const mark of [jobId, `${jobId}${GREETED}`]) rmSync(join(dir, mark), { force: true });
}

/** In the worker: whether `jobId`'s process has started it, forgetting the mark as it reads it. */
export function takeJobStart(jobId: string, dir: string | undefined): boolean {
  if (!dir || !JOB_ID.test(jobId)) return false;
  try {
    rmSync(join(dir, jobId));
    return true;
  } catch {
    return false; // no mark: not started (or the directory is gone)
  }
}

/** Removes the directory as the worker exits. */
export function clearJobStarts(dir = process.env[JOB_STARTS_DIR_ENV]): void {
  if (!dir) return;
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    /* nothing to clear */
  }
}
