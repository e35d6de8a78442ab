import { dispose } from '@livekit/rtc-node';
import type { LogFn } from '../log.ts';

/**
 * The job process itself, apart from the call it runs: what its worker tells it over IPC, losing
 * that worker, errors nobody catches, and how the process leaves once its call has ended. agents-js
 * decides how a job process dies; these are the internals of `ipc/job_proc_lazy_main.js` this
 * relies on, each pinned by test/agent/job-process-contract.test.ts so an upgrade that changes one
 * fails there first.
 */

/** A job whose worker stopped pinging exits this long after the last ping, skipping its callbacks. */
export const ORPHANED_TIMEOUT_MS = 15_000;
/** The worker pings every job this often (`proc_pool.js`). */
export const PING_INTERVAL_MS = 2_500;
/**
 * No ping for this long (three missed) and the worker counts as lost, channel open or not (a
 * blocked event loop, a stopped process): the orphan exit is then 7.5 s away, and the call's end
 * needs that. Later would leave the hooks and the report too little; a worker that only hiccups
 * for this long is rarer than one that is gone.
 */
export const STALLED_AFTER_MS = 3 * PING_INTERVAL_MS;
/** Kept free before the orphan exit: the library's own exit path, timers late on a busy machine. */
const ORPHAN_EXIT_MARGIN_MS = 1_500;
/** A job that threw where nobody catches it gets this long to end its call, then exits 1. */
export const CRASH_BUDGET_MS = 5_000;
/** After a crashed call's end, the time its traces get to leave before the exit. */
const CRASH_FLUSH_MS = 1_000;
/** A flush ends this long before the exit it precedes: the exit path itself (rtc-node's dispose). */
export const EXIT_RESERVE_MS = 500;

export type JobProcessEvents = {
  /** The worker asked this job to shut down (its drain timeout or close, LiveKit ending the job). */
  onShutdownRequest(): void;
  /**
   * The worker is gone (crash, OOM, a second kill) or has stopped pinging: this process exits soon
   * whatever runs, so the call ends by `deadline` (epoch ms). The traces are flushed once this
   * settles.
   */
  onWorkerLost(deadline: number): Promise<unknown> | void;
  /**
   * Something threw where nobody catches it (ours or a plugin's listener): the process state is
   * not trusted, so the call ends by `deadline`, the traces are flushed and the process exits 1.
   */
  onCrash(error: unknown, deadline: number): Promise<unknown>;
  /** Sends the call's traces, giving up at `deadline` (epoch ms); never throws. */
  flush?(deadline: number): Promise<void>;
  log: LogFn;
};

type Proc = Pick<NodeJS.Process, 'on' | 'off' | 'once' | 'exit' | 'connected'>;

/**
 * Processes whose exit the crash path has taken over: it exits 1 once its call has ended and its
 * traces are flushed, and nothing else may exit (0) before it.
 */
const crashExits = new WeakSet<object>();

/** Watches this job process for the events above. Returns a function that stops watching. */
export function watchJobProcess(
  events: JobProcessEvents,
  { proc = process as Proc, now = Date.now } = {},
): () => void {
  // Until the first ping is seen, the one that last reset the orphan timer may be a full
  // interval old.
  let lastPing = now() - PING_INTERVAL_MS;
  let lost = false;
  const workerLost = (stalled: boolean) => {
    if (lost) return;
    lost = true;
    clearTimeout(stallTimer);
    if (stalled)
      events.log('warn', 'the worker stopped pinging this job; ending the call before its exit', {
        since_last_ping_ms: now() - lastPing,
      });
    // agents-js's orphan timer runs from the last ping, channel open or not.
    const exitAt = lastPing + ORPHANED_TIMEOUT_MS;
    void Promise.resolve()
      .then(() => events.onWorkerLost(exitAt - ORPHAN_EXIT_MARGIN_MS))
      .catch(() => {})
      .then(() => events.flush?.(exitAt - EXIT_RESERVE_MS));
  };
  // Only a job process its worker forked gets pings (not `console` mode's in-process job). The
  // check waits one turn of the event loop: after a stall of this process's own loop, pings
  // already waiting on the channel are read first, and they say the worker is there. Timers run
  // on the monotonic clock and can fire a little before the wall clock says the time is up
  // (rounding, a slewed clock): then the check is armed again for what is left, or a stall
  // would go unseen until the orphan exit.
  const stillSilent = () => {
    if (lost) return;
    if (now() - lastPing >= STALLED_AFTER_MS) workerLost(true);
    else {
      clearTimeout(stallTimer); // one a ping armed since this check was scheduled
      stallTimer = watchPings();
    }
  };
  const watchPings = (): NodeJS.Timeout | undefined =>
    proc.connected
      ? setTimeout(
          () => setImmediate(stillSilent),
          Math.max(1, lastPing + STALLED_AFTER_MS - now()),
        ).unref()
      : undefined;
  let stallTimer = watchPings();
  const onMessage = (msg: unknown) => {
    const kind = (msg as { case?: string } | null)?.case;
    if (kind === 'pingRequest') {
      lastPing = now();
      if (lost) return;
      clearTimeout(stallTimer);
      stallTimer = watchPings();
    } else if (kind === 'shutdownRequest') events.onShutdownRequest();
  };
  const onDisconnect = () => workerLost(false);
  let crashed = false;
  const onCrash = (error: unknown, origin: string) => {
    const fields = { origin, error: describe(error) };
    if (crashed) return events.log('error', 'uncaught error while ending a crashed call', fields);
    crashed = true;
    crashExits.add(proc);
    events.log('error', 'uncaught error in the job process; ending the call', fields);
    const deadline = now() + CRASH_BUDGET_MS;
    const exitAt = deadline + CRASH_FLUSH_MS;
    // Whatever the end does, the process goes: a half-broken job must not hold its slot.
    setTimeout(() => exitProcess(1, proc), exitAt - now()).unref();
    void Promise.resolve()
      .then(() => events.onCrash(error, deadline))
      .catch(() => {})
      .then(() => events.flush?.(exitAt - EXIT_RESERVE_MS))
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
    clearTimeout(stallTimer);
    proc.off('message', onMessage);
    proc.off('disconnect', onDisconnect);
    proc.off('uncaughtException', onUncaught);
    proc.off('unhandledRejection', onRejection);
  };
}

/**
 * How the process leaves once its call has ended (hooks and report done): `shutdown` starts
 * agents-js's stock teardown (`ctx.shutdown`), which closes the session, leaves the room, runs the
 * shutdown callbacks and exits 0; it gets `graceMs`, after which the process exits anyway, saying
 * so (agents-js 1.9 can wedge in `AgentSession.close()`, upstream livekit/agents #5497). The
 * traces leave inside that window: `flush()` (called from a shutdown callback, when every span of
 * the call has ended) gives up `EXIT_RESERVE_MS` before the exit, so the stock teardown still ends
 * first; a teardown that has not reached it by half the window gets its flush started then.
 *
 * After a crash none of this happens: the crash path owns the exit (exit 1, once its traces are
 * flushed, by its own deadline), and a stock teardown would exit 0 before it.
 */
export function exitAfterCall({
  graceMs,
  flush,
  log,
  shutdown,
  proc = process as Proc,
  now = Date.now,
}: {
  graceMs: number;
  flush?: (deadline: number) => Promise<void>;
  log: LogFn;
  /** Starts the stock teardown; not called when the crash path owns the exit. */
  shutdown?: () => void;
  proc?: Proc;
  now?: () => number;
}): { flush(): Promise<void> } {
  if (crashExits.has(proc)) {
    log('info', 'the job crashed: its crash path ends the process (exit 1)');
    return { flush: () => Promise.resolve() };
  }
  shutdown?.();
  const exitAt = now() + graceMs;
  if (flush) setTimeout(() => void flush(exitAt), graceMs / 2).unref();
  setTimeout(() => {
    log('warn', 'stock job teardown is stuck; exiting the job process', { grace_ms: graceMs });
    exitProcess(0, proc);
  }, graceMs).unref();
  return { flush: () => flush?.(exitAt - EXIT_RESERVE_MS) ?? Promise.resolve() };
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
