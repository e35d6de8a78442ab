import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EndReason } from '../../wire-contract/index.ts';
import { JOB_ID } from './job-starts.ts';

/**
 * A job process hands its call's figures to its worker, whose `/metrics` counts them
 * (process/metrics.ts): agents-js gives no job-to-worker channel, and the figures (how the call
 * ended, what became of its report, its turns' latency) live in the job process. As with the job
 * starts (process/job-starts.ts), the worker chooses a directory once per boot and hands it to its
 * job processes in the environment they inherit; each job writes one file as its call ends, and
 * the worker folds and deletes what it finds at each scrape. Without the directory nothing is
 * written and those figures are missing from `/metrics`, nothing else.
 */
export const JOB_FIGURES_DIR_ENV = 'AGENT_JOB_FIGURES_DIR';

/** What became of a call's report: taken by the edge, kept in the outbox, refused for good, lost. */
export type ReportFate = 'delivered' | 'kept' | 'refused' | 'failed' | 'not_sent';

export type JobFigures = {
  end_reason: EndReason;
  report: ReportFate;
  /** Each answered turn's latency, end of the caller's speech to the agent's first audio (ms). */
  turn_e2e_ms: number[];
  /** From the job's entry (its call handed to this process) to the agent's first audio (ms). */
  greeting_ms?: number;
  /** From this process's start to its being ready for a call (modules and prewarm; ms). */
  process_ready_ms?: number;
};

/** What this job process notes as its call goes (one call per process), for its figures. */
const noted: Pick<JobFigures, 'greeting_ms' | 'process_ready_ms'> = {};

/** The process is ready for a call (its prewarm done): how long since it started. */
export function noteProcessReady(): void {
  noted.process_ready_ms = performance.now();
}

/** The agent's first audio of the call: how long since the job's entry (`entryAt`, performance.now()). */
export function noteGreeting(entryAt: number): void {
  noted.greeting_ms ??= performance.now() - entryAt;
}

/** Called once in the worker, before its pool forks a job process. */
export function chooseJobFiguresDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    const dir = mkdtempSync(join(tmpdir(), `livekit-voice-agent-figures-${process.pid}-`));
    env[JOB_FIGURES_DIR_ENV] = dir;
    return dir;
  } catch {
    return undefined;
  }
}

/**
 * Called by a job process as its call ends (write, then rename: the worker never reads half a
 * file). Never throws: the call's end goes on regardless.
 */
export function writeJobFigures(
  jobId: string,
  figures: JobFigures,
  dir = process.env[JOB_FIGURES_DIR_ENV],
): void {
  if (!dir || !JOB_ID.test(jobId)) return;
  const partial = join(dir, `${jobId}.partial`);
  try {
    writeFileSync(partial, JSON.stringify({ ...noted, ...figures }));
    renameSync(partial, join(dir, `${jobId}.json`));
  } catch {
    rmSync(partial, { force: true });
  }
}

/** In the worker: every call's figures written since the last look, each read once. */
export function takeJobFigures(dir: string | undefined): JobFigures[] {
  if (!dir) return [];
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const taken: JobFigures[] = [];
  for (const name of names) {
    const path = join(dir, name);
    try {
      taken.push(JSON.parse(readFileSync(path, 'utf8')) as JobFigures);
    } catch {
      /* unreadable: dropped below, never counted twice */
    }
    rmSync(path, { force: true });
  }
  return taken;
}

/** Removes the directory as the worker exits. */
export function clearJobFigures(dir = process.env[JOB_FIGURES_DIR_ENV]): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}
