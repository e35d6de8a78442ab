import { log, type AgentServer, type JobRequest } from '@livekit/agents';
import { availableParallelism, totalmem } from 'node:os';

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

/** What an idle, prewarmed job process holds (bench:agent: ~160-170 MiB), with some margin. */
const BYTES_PER_IDLE_PROCESS = 200 * 2 ** 20;
/** The worker and agents' shared inference process (bench:agent: ~150 + ~340 MiB). */
const BYTES_BESIDE_CALLS = 512 * 2 ** 20;

/**
 * How many job processes to keep warm, from the machine. agents-js warms them one at a time, so a
 * burst of calls past the warm ones waits ~1 s per process before its greeting (bench:capacity).
 * Where memory allows beyond `cap` calls, the worker and the inference process, as many as the cap
 * (every caller of a burst at the cap is greeted at once); never fewer than agents-js's own
 * default, min(cores, 4), nor more than the cap.
 */
export function defaultIdleProcesses(
  cap: number,
  cores = availableParallelism(),
  memoryBytes = totalmem(),
): number {
  const spare = memoryBytes - cap * BYTES_PER_CALL - BYTES_BESIDE_CALLS;
  const byMemory = Math.max(0, Math.floor(spare / BYTES_PER_IDLE_PROCESS));
  return Math.max(1, Math.min(cap, Math.max(Math.min(cores, 4), byMemory)));
}

/** How long an accepted job counts before its process shows up (agents-js's assignment timeout). */
const ACCEPTED_GRACE_MS = 15_000;

/**
 * A hard cap on the calls this worker runs. agents-js reports load every 2.5 s, so a burst of job
 * requests between two reports would all be accepted: the request function refuses past the cap
 * at once instead, counting calls accepted but not yet running. (Counting `activeJobs` is right
 * only with a pool of prewarmed processes: without one, agents-js never drops a finished job's
 * process and the count only grows; main.ts always keeps one.) A refused or dropped dispatch is
 * not the end of the call: the edge re-dispatches it until its agent-wait deadline.
 */
export class CallCapacity {
  readonly cap: number;
  readonly #now: () => number;
  /** Accepted job ids, until their process runs them (or the grace passes). */
  readonly #accepted = new Map<string, number>();
  #worker: Pick<AgentServer, 'activeJobs'> | undefined;

  constructor(cap: number, now: () => number = Date.now) {
    this.cap = cap;
    this.#now = now;
  }

  /** Calls running now, or accepted and about to run. */
  running(): number {
    const live = new Set((this.#worker?.activeJobs ?? []).map((j) => j.job.id));
    for (const [id, at] of this.#accepted)
      if (live.has(id) || this.#now() - at > ACCEPTED_GRACE_MS) this.#accepted.delete(id);
    return live.size + this.#accepted.size;
  }

  /** agents-js's `loadFunc`, which is also where it first hands over the worker. */
  readonly load = async (worker: Pick<AgentServer, 'activeJobs'>): Promise<number> => {
    this.#worker = worker;
    return Math.min(1, this.running() / this.cap);
  };

  /** agents-js's `requestFunc`: accept up to the cap, refuse past it. */
  readonly request = async (req: Pick<JobRequest, 'id' | 'accept' | 'reject'>): Promise<void> => {
    const running = this.running();
    if (running >= this.cap) {
      log().info({ job_id: req.id, running, cap: this.cap }, 'at the call cap: refusing a job');
      return req.reject();
    }
    this.#accepted.set(req.id, this.#now());
    await req.accept();
  };
}
