import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  exitAfterCall,
  EXIT_RESERVE_MS,
  ORPHANED_TIMEOUT_MS,
  PING_INTERVAL_MS,
  STALLED_AFTER_MS,
  watchJobProcess,
} from '../../agent/process/job-process.ts';

/**
 * The rules of agent/process/job-process.ts on a clock the test moves; the same handling inside
 * agents-js's real job process is in job-process-contract.test.ts.
 */
/** A job process as its worker forks it: with an IPC channel (`connected`). */
function fakeProcess({ connected = true } = {}) {
  const proc = new EventEmitter() as EventEmitter & {
    exit: ReturnType<typeof vi.fn>;
    connected: boolean;
  };
  proc.exit = vi.fn();
  proc.connected = connected;
  return proc;
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'Date'] });
  vi.setSystemTime(1_700_000_000_000);
});
afterEach(() => vi.useRealTimers());

describe('a worker that stops pinging', () => {
  function watch({ connected = true } = {}) {
    const proc = fakeProcess({ connected });
    const lost: number[] = [];
    const flushed: number[] = [];
    let endCall: () => void = () => {};
    const stop = watchJobProcess(
      {
        onShutdownRequest: () => {},
        onWorkerLost: (deadline) => {
          lost.push(deadline);
          return new Promise<void>((r) => (endCall = r));
        },
        onCrash: async () => {},
        flush: async (deadline) => void flushed.push(deadline),
        log: () => {},
      },
      { proc: proc as never },
    );
    const ping = () => proc.emit('message', { case: 'pingRequest', value: {} });
    return { proc, lost, flushed, endCall: () => endCall(), stop, ping };
  }

  it('is not lost while its pings come, even late ones', async () => {
    const w = watch();
    w.ping();
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync(STALLED_AFTER_MS - 100);
      w.ping();
    }
    expect(w.lost).toEqual([]);
    w.stop();
  });

  it(`is lost ${STALLED_AFTER_MS} ms after its last ping, channel open: the call ends before the orphan exit, then the traces are flushed`, async () => {
    const w = watch();
    w.ping();
    const lastPing = Date.now();
    await vi.advanceTimersByTimeAsync(STALLED_AFTER_MS - 1);
    expect(w.lost).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await vi.runOnlyPendingTimersAsync(); // the check waits one turn for pings already read
    expect(w.lost).toHaveLength(1);
    const orphanExit = lastPing + ORPHANED_TIMEOUT_MS;
    expect(w.lost[0]).toBeLessThan(orphanExit);
    expect(w.lost[0]! - Date.now()).toBeGreaterThanOrEqual(5_000); // time left for hooks and report
    // The flush waits for the call's end, and ends before the orphan exit.
    expect(w.flushed).toEqual([]);
    w.endCall();
    await vi.advanceTimersByTimeAsync(0);
    expect(w.flushed).toEqual([orphanExit - EXIT_RESERVE_MS]);
    expect(w.flushed[0]).toBeGreaterThan(w.lost[0]!);
    // The channel closing afterwards (the worker really died) starts no second end.
    w.proc.emit('disconnect');
    await vi.advanceTimersByTimeAsync(30_000);
    expect(w.lost).toHaveLength(1);
    w.stop();
  });

  it('is still found lost when its timer fires early by the wall clock (a clock slewed back, timers a millisecond early)', async () => {
    // Node's timers run on the monotonic clock, the check reads the wall clock: here the wall
    // clock loses 1 ms a second against the timers, so the check first runs a few ms too early.
    const t0 = Date.now();
    const now = () => Date.now() - Math.floor((Date.now() - t0) / 1_000);
    const proc = fakeProcess();
    const lost: number[] = [];
    const stop = watchJobProcess(
      {
        onShutdownRequest: () => {},
        onWorkerLost: (deadline) => void lost.push(deadline),
        onCrash: async () => {},
        log: () => {},
      },
      { proc: proc as never, now },
    );
    proc.emit('message', { case: 'pingRequest', value: {} });
    await vi.advanceTimersByTimeAsync(STALLED_AFTER_MS);
    await vi.runOnlyPendingTimersAsync();
    expect(lost, 'lost at the first check').toEqual([]); // too early by the wall clock: not yet
    await vi.advanceTimersByTimeAsync(100);
    await vi.runOnlyPendingTimersAsync();
    expect(lost, 'lost once the wall clock gets there').toHaveLength(1);
    stop();
  });

  it('counts the first interval as already begun: a job watched between pings is not given more', async () => {
    const w = watch();
    await vi.advanceTimersByTimeAsync(STALLED_AFTER_MS - PING_INTERVAL_MS);
    await vi.runOnlyPendingTimersAsync();
    expect(w.lost).toHaveLength(1);
    w.stop();
  });

  it("is not watched for in console mode's in-process job, which no worker pings", async () => {
    const w = watch({ connected: false });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(w.lost).toEqual([]);
    w.stop();
  });

  it('stops watching once the call is over', async () => {
    const w = watch();
    w.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    w.proc.emit('disconnect');
    expect(w.lost).toEqual([]);
  });
});

describe('leaving after the call', () => {
  /** The job leaves the call with the stock teardown to start; answers how often it was started. */
  function leaveWithStockTeardown(proc: ReturnType<typeof fakeProcess>) {
    let shutdowns = 0;
    exitAfterCall({
      graceMs: 500,
      log: () => {},
      shutdown: () => shutdowns++,
      proc: proc as never,
    });
    return () => shutdowns;
  }

  it('flushes the traces by the exit window, half of it at the latest, and exits once the window is over', async () => {
    const proc = fakeProcess();
    const flushes: number[] = [];
    const warnings: string[] = [];
    const started = Date.now();
    const leaving = exitAfterCall({
      graceMs: 2_000,
      flush: async (deadline) => void flushes.push(deadline),
      log: (level, msg) => level === 'warn' && warnings.push(msg),
      proc: proc as never,
    });
    // The stock teardown's shutdown callback: done before the exit, with room for the exit path.
    await leaving.flush();
    expect(flushes).toEqual([started + 2_000 - EXIT_RESERVE_MS]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(flushes).toEqual([started + 2_000 - EXIT_RESERVE_MS, started + 2_000]);
    expect(warnings).toEqual([]);
    // Still here at the end of the window: the stock teardown is stuck.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(warnings).toEqual(['stock job teardown is stuck; exiting the job process']);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(proc.exit).toHaveBeenCalledWith(0);
  });

  it('after a crash the crash path owns the exit: no stock teardown, no exit 0; exit 1 once the call has ended and the traces are flushed', async () => {
    const proc = fakeProcess();
    let endCall: () => void = () => {};
    const flushed: number[] = [];
    watchJobProcess(
      {
        onShutdownRequest: () => {},
        onWorkerLost: () => {},
        onCrash: () => new Promise<void>((r) => (endCall = r)),
        flush: async (deadline) => void flushed.push(deadline),
        log: () => {},
      },
      { proc: proc as never },
    );
    proc.emit('uncaughtException', new Error('boom'));
    await vi.advanceTimersByTimeAsync(100);
    endCall(); // the call has ended: the job's entry goes on to leave
    const shutdowns = leaveWithStockTeardown(proc);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(shutdowns()).toBe(0);
    expect(flushed).toHaveLength(1);
    expect(proc.exit.mock.calls).toEqual([[1]]);
  });

  it('without a crash, the stock teardown is started and the exit armed', async () => {
    const proc = fakeProcess();
    const shutdowns = leaveWithStockTeardown(proc);
    expect(shutdowns()).toBe(1);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(proc.exit).toHaveBeenCalledWith(0);
  });

  it('without traces configured, only the exit is armed', async () => {
    const proc = fakeProcess();
    const leaving = exitAfterCall({ graceMs: 500, log: () => {}, proc: proc as never });
    await expect(leaving.flush()).resolves.toBeUndefined();
    await vi.advanceTimersByTimeAsync(1_500);
    expect(proc.exit).toHaveBeenCalledWith(0);
  });
});
