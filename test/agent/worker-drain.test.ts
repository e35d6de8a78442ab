import { type AgentServer, WorkerError } from '@livekit/agents';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { drainThroughPoolStart } from '../../agent/process/worker-drain.ts';

/**
 * agent/process/worker-drain.ts on a stand-in server class whose stock drain the test scripts, on
 * a clock the test moves. That agents-js's CLI runs this drain, and that its own drain still throws
 * for a process the pool has not started, is pinned in worker-signals.test.ts; a call keeping its
 * drain window through a pool start, end to end, in test/e2e/agent-shutdowns.test.ts.
 */
type Logged = { level: string; msg: string; fields?: Record<string, unknown> };

function serverWith(
  stock: (timeout?: number) => Promise<void>,
  afterDrain?: (deadline: number) => Promise<unknown>,
) {
  class Server {
    activeJobs: unknown[] = [];
    drain(timeout?: number): Promise<void> {
      return stock(timeout);
    }
  }
  const logs: Logged[] = [];
  drainThroughPoolStart(
    {
      drainTimeoutMs: 4_000,
      log: (level, msg, fields) => logs.push({ level, msg, fields }),
      afterDrain,
    },
    Server as unknown as { prototype: Pick<AgentServer, 'drain'> },
  );
  return { server: new Server(), logs };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("the worker's drain through a pool still starting", () => {
  it('agents-js drains by itself: nothing else happens', async () => {
    const { server, logs } = serverWith(async () => {});
    server.activeJobs = [{}];
    await expect(server.drain()).resolves.toBeUndefined();
    expect(logs).toEqual([]);
  });

  it('once the calls are done, the step after the drain (the outbox’s last pass) is awaited before the drain returns, with the drain’s deadline', async () => {
    const steps: string[] = [];
    let finish: () => void = () => {};
    const { server } = serverWith(
      async () => void steps.push('calls drained'),
      (deadline) => {
        steps.push(`after the drain, ${deadline - Date.now()} ms left`);
        return new Promise<void>((r) => (finish = r));
      },
    );
    let drained = false;
    void server.drain().then(() => (drained = true));
    await vi.advanceTimersByTimeAsync(100);
    expect(steps).toEqual(['calls drained', 'after the drain, 4000 ms left']);
    expect(drained).toBe(false);
    finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(drained).toBe(true);
  });

  it('"runner not started": waits for the running calls, and resolves once the last one is over', async () => {
    const { server, logs } = serverWith(async () => {
      throw new Error('runner not started');
    });
    server.activeJobs = [{}, {}];
    let drained = false;
    void server.drain().then(() => (drained = true));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(drained).toBe(false);
    server.activeJobs = [];
    await vi.advanceTimersByTimeAsync(500);
    expect(drained).toBe(true);
    expect(logs).toEqual([
      {
        level: 'info',
        msg: 'agents-js could not join a pooled process (one still starting); waiting for the running calls',
        fields: { error: 'runner not started', active_jobs: 2 },
      },
    ]);
  });

  it('calls still running at the drain timeout: WorkerError, as agents-js would throw, so the CLI closes the worker', async () => {
    const { server } = serverWith(async () => {
      throw new Error('runner not started');
    });
    server.activeJobs = [{}];
    let settled: unknown;
    const outcome = server.drain(3_000).then(
      () => (settled = 'resolved'),
      (err: unknown) => (settled = err),
    );
    await vi.advanceTimersByTimeAsync(2_900);
    expect(settled, 'still draining within the timeout').toBeUndefined();
    await vi.advanceTimersByTimeAsync(500);
    const err = await outcome;
    expect(err).toBeInstanceOf(WorkerError);
    expect((err as Error).message).toBe('timed out draining');
  });

  it("agents-js's own drain timeout is passed on as it is, without a second wait", async () => {
    const stockTimeout = new WorkerError('timed out draining');
    const { server, logs } = serverWith(async () => {
      throw stockTimeout;
    });
    server.activeJobs = [{}];
    await expect(server.drain()).rejects.toBe(stockTimeout);
    expect(logs).toEqual([]);
  });

  it('another failure logs a warning and still waits for the calls', async () => {
    const { server, logs } = serverWith(async () => {
      throw new Error('process not connected');
    });
    server.activeJobs = [];
    await expect(server.drain()).resolves.toBeUndefined();
    expect(logs.map((l) => [l.level, l.fields?.error])).toEqual([
      ['warn', 'process not connected'],
    ]);
  });
});
