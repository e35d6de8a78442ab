import type { JobContext } from '@livekit/agents';
import { pathToFileURL } from 'node:url';
import type { CallLifecycle } from './lifecycle.ts';

/** A module of the deployer's own end-of-call hooks, named by AGENT_HOOKS_MODULE. */
export type HooksModule = {
  registerHooks(lifecycle: CallLifecycle, ctx: JobContext): void | Promise<void>;
};

/**
 * Imports the hooks module at `path` and lets it register its hooks on this call's lifecycle. It
 * gets the job context with one change: `addShutdownCallback` registers a lifecycle hook, so those
 * callbacks are bounded, told the reason (their first argument), reported, and run before the job
 * exits, instead of after the room is gone with no limit.
 */
export async function registerHooksFrom(
  path: string,
  lifecycle: CallLifecycle,
  ctx: JobContext,
): Promise<void> {
  const hooks = (await import(pathToFileURL(path).href)) as HooksModule;
  await hooks.registerHooks(lifecycle, shutdownCallbacksAsHooks(ctx, lifecycle));
}

function shutdownCallbacksAsHooks(ctx: JobContext, lifecycle: CallLifecycle): JobContext {
  let count = 0;
  const addShutdownCallback = (callback: (reason?: string) => Promise<void>) => {
    count += 1;
    lifecycle.onCallEnd(`shutdown-callback-${count}`, (summary) => callback(summary.reason));
  };
  // JobContext keeps its state in private fields: members are read from, and bound to, the target.
  return new Proxy(ctx, {
    get(target, key) {
      if (key === 'addShutdownCallback') return addShutdownCallback;
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
