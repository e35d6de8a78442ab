import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

/** A child process whose output goes to a log file, and that is killed with its group on stop. */
export type Proc = {
  child: ChildProcess;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<void>;
};

export function startProcess(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; logFile: string },
): Proc {
  const out = createWriteStream(opts.logFile, { flags: 'a' });
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    logFile: opts.logFile,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid!, signal);
      } catch {
        /* already gone */
      }
      const killer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

// Ports come from below the kernel's ephemeral range (32768 and up), so no outgoing connection
// takes one between this check and the server's bind, and from a band per vitest worker
// (VITEST_POOL_ID), so e2e files running side by side never pick the same one. Within a band the
// files of a run take ports in turn (a counter in TMPDIR), never one a previous file used: a port
// whose connections linger in TIME_WAIT passes this check (Node binds with SO_REUSEADDR) and
// still fails workerd's bind ("Address already in use").
const FIRST_PORT = 20_000;
const BAND = 1_000;
const BANDS = 12;

/** A TCP port nothing listens on (checked on every interface, as LiveKit's RTC port binds). */
export async function freePort(): Promise<number> {
  const band = Number(process.env.VITEST_POOL_ID ?? 0) % BANDS;
  const counter = join(tmpdir(), `lkvc-next-port-${band}`);
  let next = existsSync(counter) ? Number(readFileSync(counter, 'utf8')) || 0 : 0;
  for (let tried = 0; tried < BAND; tried++) {
    const port = FIRST_PORT + band * BAND + (next++ % BAND);
    writeFileSync(counter, String(next % BAND));
    if (await listenable(port)) return port;
  }
  throw new Error(`no free port in ${FIRST_PORT + band * BAND}+${BAND}`);
}

function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '0.0.0.0', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** Polls `probe` until it returns a value (readiness by probing, never by sleeping a guess). */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  { timeoutMs = 30_000, intervalMs = 100 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`,
  );
}

export async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * How soon a job must exit after its caller hangs up for the test to tell this product from
 * stock agents-js, which holds the job until LiveKit closes the emptied room (`departure_timeout`,
 * 20 s here): half of that. Not a speed claim (a busy 2-core CI box must pass it; the tests print
 * the time and bench:lifecycle measures it), only the line between "exits" and "lingers".
 */
export const EXITS_NOT_LINGERS_MS = 10_000;
