import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort, httpOk, startProcess, waitFor, type Proc } from './processes.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const WRANGLER = join(ROOT, 'node_modules/.bin/wrangler');

export type Edge = {
  url: string;
  adminKey: string;
  appKey: string;
  proc: Proc;
  stop(): Promise<void>;
};

/**
 * The edge under `wrangler dev` (workerd, local D1 with migrations applied, local rate limits,
 * `/__scheduled` for the cron), in its own state folder, configured by --var.
 */
export async function startEdge(
  dir: string,
  vars: Record<string, string>,
  port?: number,
): Promise<Edge> {
  mkdirSync(dir, { recursive: true });
  const persist = join(dir, 'wrangler-state');
  const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1' };
  execFileSync(
    WRANGLER,
    ['d1', 'migrations', 'apply', 'LEDGER', '--local', '--persist-to', persist],
    { cwd: ROOT, env, stdio: 'pipe' },
  );
  const listen = port ?? (await freePort());
  // wrangler's devtools port defaults to 9229 when it looks free: two edges started side by side
  // both see it free, and the slower one dies with "Address already in use" (seen in CI).
  const inspector = await freePort();
  const adminKey = vars.ADMIN_API_KEY ?? 'e2e-admin-key-0123456789';
  const appKey = vars.APP_API_KEY ?? 'e2e-app-key-0123456789';
  const allVars = { ADMIN_API_KEY: adminKey, APP_API_KEY: appKey, ...vars };
  const args = [
    'dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(listen),
    '--inspector-port',
    String(inspector),
    '--persist-to',
    persist,
    '--test-scheduled',
    '--show-interactive-dev-session=false',
    '--log-level',
    'log',
  ];
  // An empty env file keeps a developer's .dev.vars out of the tests; everything comes from --var.
  const emptyEnv = join(dir, 'empty.env');
  execFileSync('touch', [emptyEnv]);
  args.push('--env-file', emptyEnv);
  for (const [k, v] of Object.entries(allVars)) args.push('--var', `${k}:${v}`);
  const proc = startProcess(WRANGLER, args, { cwd: ROOT, env, logFile: join(dir, 'edge.log') });
  const url = `http://127.0.0.1:${listen}`;
  await waitFor('edge (wrangler dev)', () => httpOk(`${url}/healthz`), {
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  return { url, adminKey, appKey, proc, stop: () => proc.stop('SIGTERM') };
}
