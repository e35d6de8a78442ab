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

async function startWorker() {
  const child = spawn(process.execPath, ['agent/main.ts', 'start'], {
    env: {
      PATH: process.env.PATH,
      LIVEKIT_URL: 'ws://127.0.0.1:1',
      LIVEKIT_API_KEY: 'k',
      LIVEKIT_API_SECRET: 's'.repeat(32),
      OPENAI_API_KEY: 'sk-unused',
      AGENT_HEALTH_PORT: String(await freePort()),
      LOG_LEVEL: 'debug',
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
  return { child, exited, waitFor };
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
});
