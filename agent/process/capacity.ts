import { log, type AgentServer, type JobRequest } from '@livekit/agents';
import { availableParallelism, totalmem } from 'node:os';
import { forgetJob, JOB_STARTS_DIR_ENV, jobGreeted, takeJobStart } from './job-starts.ts';

/** What one spoken call costs on this product's measured hardware (docs/operations.md, Sizing). */
const CALLS_PER_CORE = 5;
const BYTES_PER_CALL = 400 * 2 ** 20;

/**
 * The default cap on concurrent calls, from the machine: bench:capacity found the knee at about
 * 12 spoken calls on 2 cores (5 per core leaves headroom), and a job process with its models
 * holds ~250-350 MB, so memory bounds small machines first.
 */
export function defaultCallCap(cores = availableParallelism(), memoryBytes = totalmem()): number {
  return Math.max(1, Math.min(CALLS_PER_CORE * cores, Math.floor(memoryBytes / BYTES_PER_CALL)));
}

/**
 * How many job processes to keep warm: two per core, at most 4, within the cap (agents-js's own
 * default is one per core, at most 4). On 2 cores, 4 warm greeted a burst of 4 at p50 1.0–1.5 s
 * against 1.6–1.7 s with 2, and a burst of 10 at p50 3.9–4.9 s against 6.0–6.3 s, none failed
 * (docs/benchmarks.md, the pool in a burst); 10 warm left callers ungreeted (the refill starves
 * the calls: agents-js warms processes one at a time, while the burst's calls run). Each idle
 * process uses ~2 % of a core and ~170 MiB.
 */
export function defaultIdleProcesses(cap: number, cores = availableParallelism()): number {
  return Math.max(1, Math.min(cap, 2 * cores, 4));
}

/**
 * How long an accepted job counts while nothing says its process has started it: agents-js waits
 * 7.5 s for LiveKit's assignment, then only logs, and a job never assigned never starts.
 */
const ACCEPTED_GRACE_MS = 15_000;

/**
 * A hard cap on the calls this worker runs. agents-js reports load every 2.5 s, so a burst of job
 * requests between two reports would all be accepted: the request function refuses past the cap
 * at once instead. It counts the jobs agents-js lists as running (`activeJobs`: from before a
 * job's process starts it until that process exits) and the calls accepted but not started yet.
 * An accepted call stops counting as such once the worker has seen it listed, or once its process
 * has said it started it (process/job-starts.ts): agents-js says nothing when a job ends, and the
 * worker looks at `activeJobs` only at its load reports and job requests, so a short call can
 * start and end between two looks; one that started and is no longer listed has ended. A call
 * nothing says has started counts for ACCEPTED_GRACE_MS.
 *
 * (Counting `activeJobs` is right only with a pool of prewarmed processes: without one, agents-js
 * never drops a finished job's process and the count only grows; main.ts always keeps one.) A
 * refused or dropped dispatch is not the end of the call: the edge re-dispatches it until its
 * agent-wait deadline.
 */
export class CallCapacity {
  readonly cap: number;
  /**
   * The load at which this worker is full, as LiveKit's server sees it: it sends a job only to a
   * worker whose load is below its `agents.target_load` (0.7 by default in livekit-server: a job's
   * affinity for a worker is the target minus the load, and none is sent at 0). A load of
   * calls / cap would stop dispatches at 70 % of the cap (bench:fleet found two workers capped at
   * 4 with 3 calls each sent no fourth), so the load is calls / cap × this target: full at the cap.
   */
  readonly targetLoad: number;
  readonly #now: () => number;
  readonly #startsDir: string | undefined;
  /** Accepted job ids: when, and whether the worker has listed the job yet. */
  readonly #accepted = new Map<string, { at: number; seen: boolean }>();
  #worker: Pick<AgentServer, 'activeJobs'> | undefined;
  /** The jobs listed at the last look. */
  #listed = new Set<string>();

  /** `startsDir`: where this worker's job processes mark the jobs they start (job-starts.ts). */
  constructor(
    cap: number,
    now: () => number = Date.now,
    startsDir: string | undefined = process.env[JOB_STARTS_DIR_ENV],
    targetLoad = 1,
  ) {
    this.cap = cap;
    this.targetLoad = targetLoad;
    this.#now = now;
    this.#startsDir = startsDir;
  }

  /** Dispatches refused at the cap since the worker started. */
  refused = 0;

  /** Calls running now, or accepted and about to run. */
  running(): number {
    const { listed, starting } = this.counts();
    return listed + starting;
  }

  /**
   * The calls agents-js lists (their processes running them, or about to), those accepted whose
   * process has not started them yet, and how many of the listed ones their agent has greeted.
   */
  counts(): { listed: number; starting: number; greeted: number } {
    const worker = this.#worker;
    const live = new Set((worker?.activeJobs ?? []).map((j) => j.job.id));
    let waiting = 0;
    for (const [id, job] of this.#accepted) {
      if (live.has(id)) {
        job.seen = true; // counted as listed, until it is not
        continue;
      }
      // Before agents-js's first load report the cap has no job list to look at, so a started
      // call cannot be told from an ended one: it counts, its mark kept for that first look
      // (bench:fleet's burst on fresh workers ran 6 calls on a worker capped at 5 without this).
      if (!worker) {
        if (this.#now() - job.at > ACCEPTED_GRACE_MS) this.#accepted.delete(id);
        else waiting++;
        continue;
      }
      // Read (and cleared) whatever happened: a job listed once may have left its mark since.
      const started = takeJobStart(id, this.#startsDir);
      if (job.seen || started || this.#now() - job.at > ACCEPTED_GRACE_MS) {
        this.#accepted.delete(id);
        forgetJob(id, this.#startsDir);
      } else waiting++;
    }
    // A job that left the list has ended, whether the cap still counted it or not (one assigned
    // after its grace, say): its marks go with it.
    if (worker) {
      for (const id of this.#listed) if (!live.has(id)) forgetJob(id, this.#startsDir);
      this.#listed = live;
    }
    let greeted = 0;
    for (const id of live) if (jobGreeted(id, this.#startsDir)) greeted++;
    return { listed: live.size, starting: waiting, greeted };
  }

  /** agents-js's `loadFunc`, which is also where it first hands over the worker. */
  readonly load = async (worker: Pick<AgentServer, 'activeJobs'>): Promise<number> => {
    this.#worker = worker;
    return Math.min(1, this.running() / this.cap) * this.targetLoad;
  };

  /** agents-js's `requestFunc`: accept up to the cap, refuse past it. */
  readonly request = async (req: Pick<JobRequest, 'id' | 'accept' | 'reject'>): Promise<void> => {
    const { listed, starting } = this.counts();
    const running = listed + starting;
    if (running >= this.cap) {
      log().info({ job_id: req.id, running, cap: this.cap }, 'at the call cap: refusing a job');
      this.refused++;
      return req.reject();
    }
    this.#accepted.set(req.id, { at: this.#now(), seen: false });
    // With the count it was accepted at: a cap that let too many in shows in the log.
    log().debug({ job_id: req.id, listed, starting, cap: this.cap }, 'accepting a job');
    await req.accept();
  };
}
