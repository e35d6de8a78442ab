import type { JobContext } from '@livekit/agents';
import { pathToFileURL } from 'node:url';
import type { CallLifecycle } from './call-lifecycle.ts';

/** A module of the deployer's own end-of-call hooks, named by AGENT_HOOKS_MODULE. */
export type HooksModule = {
  registerHooks(lifecycle: CallLifecycle, ctx: JobContext): void | Promise<void>;
};

/** Imports the hooks module at `path` and lets it register its hooks on this call's lifecycle. */
export async function registerHooksFrom(
  path: string,
  lifecycle: CallLifecycle,
  ctx: JobContext,
): Promise<void> {
  const hooks = (await import(pathToFileURL(path).href)) as HooksModule;
  await hooks.registerHooks(lifecycle, ctx);
}
