import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';

/** The worker program's signals, against no LiveKit server: what a deploy or an operator sends. */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

async function startWorker(env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['agent/main.ts', 'start'], {
    env: {
      PATH: process.env.PATH,
      LIVEKIT_URL: 'ws://127.0.0.1:1',
      LIVEKIT_API_KEY: 'k',
      LIVEKIT_API_SECRET: 's'.repeat(32),
      OPENAI_API_KEY: 'sk-unused',
      AGENT_HEALTH_PORT: String(await freePort()),
      LOG_LEVEL: 'debug',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const waitFor = async (text: string) => {
    const deadline = Date.now() + 20_000;
    while (!output.includes(text)) {
      if (Date.now() > deadline) throw new Error(`no "${text}" in: ${output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { child, exited, waitFor, output: () => output };
}

describe('the worker and its signals', () => {
  it('a second SIGTERM during the drain does not kill the worker: it finishes the drain and exits 143', async () => {
    const w = await startWorker();
    await w.waitFor('starting worker');
    w.child.kill('SIGTERM');
    await w.waitFor('SIGTERM received');
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 143, signal: null });
  });

  it('a second SIGINT still forces the exit, 130, as documented', async () => {
    const w = await startWorker();
    await w.waitFor('starting worker');
    w.child.kill('SIGINT');
    await w.waitFor('SIGINT received');
    w.child.kill('SIGINT');
    expect(await w.exited).toEqual({ code: 130, signal: null });
  });

  // The pool starts its processes one at a time, each only once the one before is initialized
  // (ipc/proc_pool.js): right after "starting worker" the first is starting and the others wait
  // their turn unstarted. agents-js's own drain joins each of them, and join() on an unstarted one
  // throws "runner not started" (ipc/supervised_proc.js), which ended the drain at once. This pins
  // what agent/process/worker-drain.ts relies on: the CLI drains through AgentServer.drain, and
  // agents-js's drain still throws there (once it stops, the guard's line goes and this test says
  // so).
  it('SIGTERM while the pool is still starting its processes: the worker drains anyway (no "runner not started" error), exit 143', async () => {
    const w = await startWorker({ AGENT_MAX_CONCURRENT_CALLS: '4', AGENT_IDLE_PROCESSES: '3' });
    await w.waitFor('starting worker');
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 143, signal: null });
    expect(w.output()).toContain('SIGTERM received');
    expect(w.output()).not.toMatch(/"level":50[^\n]*runner not started/);
    expect(w.output()).toMatch(
      /"level":"info","msg":"agents-js could not join a pooled process[^\n]*"error":"runner not started"/,
    );
  });
});
