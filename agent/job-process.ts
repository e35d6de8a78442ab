import { dispose } from '@livekit/rtc-node';

/**
 * The job process itself, apart from the call it runs: what its worker tells it over IPC, losing
 * that worker, and errors nobody catches. agents-js decides how a job process dies; these are the
 * internals of `ipc/job_proc_lazy_main.js` this relies on, each pinned by
 * test/agent/job-process-contract.test.ts so an upgrade that changes one fails there first.
 */

/** A job whose worker stopped pinging exits this long after the last ping, skipping its callbacks. */
export const ORPHANED_TIMEOUT_MS = 15_000;
/** The worker pings every job this often (`proc_pool.js`). */
export const PING_INTERVAL_MS = 2_500;
/** Kept free before the orphan exit: the library's own exit path, timers late on a busy machine. */
const ORPHAN_EXIT_MARGIN_MS = 1_500;
/** A job that threw where nobody catches it gets this long to end its call, then exits 1. */
export const CRASH_BUDGET_MS = 5_000;

type Log = (
  level: 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export type JobProcessEvents = {
  /** The worker asked this job to shut down (its drain timeout or close, LiveKit ending the job). */
  onShutdownRequest(): void;
  /** The worker is gone (crash, OOM, a second kill): this process exits at `deadline` (epoch ms). */
  onWorkerLost(deadline: number): void;
  /**
   * Something threw where nobody catches it (ours or a plugin's listener): the process state is
   * not trusted, so the call ends by `deadline` and the process exits 1 once this settles.
   */
  onCrash(error: unknown, deadline: number): Promise<unknown>;
  log: Log;
};

type Proc = Pick<NodeJS.Process, 'on' | 'off' | 'once' | 'exit'>;

/** Watches this job process for the events above. Returns a function that stops watching. */
export function watchJobProcess(
  events: JobProcessEvents,
  { proc = process as Proc, now = Date.now } = {},
): () => void {
  // Until the first ping is seen, the one that last reset the orphan timer may be a full
  // interval old.
  let lastPing = now() - PING_INTERVAL_MS;
  const onMessage = (msg: unknown) => {
    const kind = (msg as { case?: string } | null)?.case;
    if (kind === 'pingRequest') lastPing = now();
    else if (kind === 'shutdownRequest') events.onShutdownRequest();
  };
  const onDisconnect = () =>
    events.onWorkerLost(lastPing + ORPHANED_TIMEOUT_MS - ORPHAN_EXIT_MARGIN_MS);
  let crashed = false;
  const onCrash = (error: unknown, origin: string) => {
    const fields = { origin, error: describe(error) };
    if (crashed) return events.log('error', 'uncaught error while ending a crashed call', fields);
    crashed = true;
    events.log('error', 'uncaught error in the job process; ending the call', fields);
    const deadline = now() + CRASH_BUDGET_MS;
    // Whatever the end does, the process goes: a half-broken job must not hold its slot.
    setTimeout(() => exitProcess(1, proc), CRASH_BUDGET_MS + 1_000).unref();
    void Promise.resolve()
      .then(() => events.onCrash(error, deadline))
      .catch(() => {})
      .finally(() => exitProcess(1, proc));
  };
  const onUncaught = (error: unknown) => onCrash(error, 'uncaughtException');
  // agents-js logs unhandled rejections at debug and goes on; one from a listener of ours or a
  // plugin's leaves the call in a state nobody planned for, so it ends the call like a throw.
  const onRejection = (reason: unknown) => onCrash(reason, 'unhandledRejection');
  proc.on('message', onMessage);
  proc.once('disconnect', onDisconnect);
  proc.on('uncaughtException', onUncaught);
  proc.on('unhandledRejection', onRejection);
  return () => {
    proc.off('message', onMessage);
    proc.off('disconnect', onDisconnect);
    proc.off('uncaughtException', onUncaught);
    proc.off('unhandledRejection', onRejection);
  };
}

/** Exits after freeing rtc-node's native side, as agents-js does, without waiting on it for long. */
export function exitProcess(code: number, proc: Proc = process): void {
  void Promise.race([dispose(), new Promise((r) => setTimeout(r, 1_000))])
    .catch(() => {})
    .finally(() => proc.exit(code));
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
