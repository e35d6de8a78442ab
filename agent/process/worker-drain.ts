import { AgentServer, WorkerError } from '@livekit/agents';
import { errorMessage } from '../../wire-contract/index.ts';
import type { LogFn } from '../log.ts';

/**
 * The worker's drain, made independent of its process pool having settled. agents-js's CLI runs
 * `AgentServer.drain()` on SIGTERM/SIGINT in `start` mode: it reports the worker full, closes the
 * idle job processes and joins every pooled one. But the pool starts its processes one at a time,
 * and `join()` on one still waiting its turn throws "runner not started" (agents-js 1.9,
 * `ipc/supervised_proc.js`): the CLI logged that and closed the worker at once, so its live calls
 * were shut down the moment a deploy signalled instead of getting DRAIN_TIMEOUT_SECONDS.
 *
 * agents-js's drain still does all of that here; only when it fails for any other reason than its
 * own timeout does this wait for the running calls itself, through the public `activeJobs`, within
 * the same drain timeout. Pinned by test/agent/worker-signals.test.ts (the CLI runs this drain, and
 * agents-js's still throws for an unstarted process) and test/e2e/agent-shutdowns.test.ts (a call
 * signalled while the pool starts keeps its whole drain window).
 */
export function drainThroughPoolStart(
  {
    drainTimeoutMs,
    log,
    pollMs = 250,
    afterDrain,
  }: {
    drainTimeoutMs: number;
    log: LogFn;
    pollMs?: number;
    /**
     * Awaited once the calls are done, before agents-js's CLI exits the process, with what is
     * left of the drain's deadline (the worker's outbox delivers what it holds: main.ts).
     */
    afterDrain?: (deadline: number) => Promise<unknown>;
  },
  server: { prototype: Pick<AgentServer, 'drain'> } = AgentServer,
): void {
  const stock = server.prototype.drain;
  server.prototype.drain = async function (this: AgentServer, timeout?: number) {
    const deadline = Date.now() + (timeout ?? drainTimeoutMs);
    await drainCalls.call(this, timeout, deadline);
    await afterDrain?.(deadline).catch((err: unknown) =>
      log('warn', 'after the drain: a step failed', { error: errorMessage(err) }),
    );
  };

  async function drainCalls(this: AgentServer, timeout: number | undefined, deadline: number) {
    try {
      await stock.call(this, timeout);
    } catch (err) {
      if (err instanceof WorkerError && /timed out/.test(err.message)) throw err;
      const error = errorMessage(err);
      log(
        error === 'runner not started' ? 'info' : 'warn',
        'agents-js could not join a pooled process (one still starting); waiting for the running calls',
        { error, active_jobs: this.activeJobs.length },
      );
      while (this.activeJobs.length > 0) {
        if (Date.now() >= deadline) throw new WorkerError('timed out draining');
        await new Promise((r) => setTimeout(r, pollMs));
      }
    }
  }
}
