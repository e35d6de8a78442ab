import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HooksModule } from '../../agent/call/hooks-module.ts';

/**
 * bench:agent's five hooks for our lifecycle; the first hangs (cut by HOOK_TIMEOUT_MS) unless
 * BENCH_HANG=0.
 */
export const registerHooks: HooksModule['registerHooks'] = (lifecycle, ctx) => {
  const dir = process.env.E2E_HOOKS_DIR!;
  mkdirSync(dir, { recursive: true });
  const room = ctx.job.room?.name ?? 'unknown';
  writeFileSync(
    join(dir, `${room}.ran.json`),
    JSON.stringify({ pid: process.pid, at: Date.now() }),
  );
  if (process.env.BENCH_HANG === '0') lifecycle.onCallEnd('quick-0', async () => {});
  else lifecycle.onCallEnd('hangs', () => new Promise(() => {}));
  for (let i = 1; i < 5; i++) lifecycle.onCallEnd(`quick-${i}`, async () => {});
};
