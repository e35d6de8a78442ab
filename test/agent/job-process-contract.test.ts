import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ORPHANED_TIMEOUT_MS, PING_INTERVAL_MS } from '../../agent/job-process.ts';

/**
 * agents-js's real job process (`ipc/job_proc_lazy_main.js`), forked and driven over IPC the way
 * its worker does, with a fixture entry. It pins the internals agent/job-process.ts and
 * agent/job.ts rely on, then shows our handling inside that real process.
 */
const agentsDist = dirname(createRequire(import.meta.url).resolve('@livekit/agents'));
const JOB_MAIN = join(agentsDist, 'ipc/job_proc_lazy_main.js');
const FIXTURE = resolve(import.meta.dirname, 'fixtures/job-process-agent.ts');
const dir = mkdtempSync(join(tmpdir(), 'job-contract-'));
const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

type Mark = { event: string; at: number; [k: string]: unknown };

async function startJob(name: string, env: Record<string, string>) {
  const out = join(dir, `${name}.jsonl`);
  const child = fork(JOB_MAIN, [FIXTURE], {
    env: { PATH: process.env.PATH, FIXTURE_OUT: out, ...env },
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
  });
  children.push(child);
  const received: string[] = [];
  child.on('message', (m: { case: string }) => received.push(m.case));
  const exited = new Promise<{ code: number | null; at: number }>((r) =>
    child.once('exit', (code) => r({ code, at: Date.now() })),
  );
  child.send({
    case: 'initializeRequest',
    value: {
      loggerOptions: { pretty: false, level: 'info' },
      pingInterval: PING_INTERVAL_MS,
      pingTimeout: 60_000,
      highPingThreshold: 500,
      sessionEndTimeout: 1_000,
    },
  });
  await until(() => received.includes('initializeResponse'), 20_000);
  let lastPing = Date.now();
  const ping = () => {
    lastPing = Date.now();
    if (child.connected) child.send({ case: 'pingRequest', value: { timestamp: lastPing } });
  };
  ping();
  const pinger = setInterval(ping, PING_INTERVAL_MS);
  child.once('exit', () => clearInterval(pinger));
  child.send({
    case: 'startJobRequest',
    value: {
      runningJob: {
        acceptArguments: { name: '', identity: 'agent-fixture', metadata: '' },
        job: { id: `AJ_${name}`, room: { name: 'fixture', sid: 'RM_fixture' }, metadata: '' },
        url: 'ws://127.0.0.1:1',
        token: 'unused',
        workerId: 'W_fixture',
      },
    },
  });
  const marks = (): Mark[] =>
    existsSync(out)
      ? readFileSync(out, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Mark)
      : [];
  await until(() => marks().some((m) => m.event === 'entry'), 10_000);
  return {
    child,
    received,
    exited,
    marks,
    at: (event: string) => marks().find((m) => m.event === event)?.at,
    /** The worker dies: no more pings, the IPC channel closes. */
    loseWorker() {
      clearInterval(pinger);
      child.disconnect();
      return lastPing;
    },
  };
}

async function until(ok: () => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.concurrent("agents-js's job process, as the design relies on it", () => {
  it("a shutdownRequest reaches the entry's own listeners and is acked; the stock teardown waits ≤ 15 s for the entry, then runs the callbacks", async () => {
    const job = await startJob('shutdown', { FIXTURE_MODE: 'stock' });
    const sent = Date.now();
    job.child.send({ case: 'shutdownRequest', value: {} });
    await until(() => job.at('shutdown-callback') !== undefined, 25_000);
    expect(job.received).toContain('shutdownRequestAck');
    expect(job.at('message:shutdownRequest')! - sent).toBeLessThan(1_000);
    // ENTRYPOINT_SHUTDOWN_TIMEOUT: the entry never returns; callbacks start after the window.
    expect(job.at('shutdown-callback')! - sent).toBeGreaterThanOrEqual(14_500);
    expect(job.at('shutdown-callback')! - sent).toBeLessThan(17_000);
    expect((await job.exited).code).toBe(0);
  }, 40_000);

  it(`a job whose worker is gone sees 'disconnect' and exits 0 about ${ORPHANED_TIMEOUT_MS / 1000} s after the last ping, without its shutdown callbacks`, async () => {
    const job = await startJob('orphan', { FIXTURE_MODE: 'stock' });
    const lastPing = job.loseWorker();
    const { code, at } = await job.exited;
    expect(code).toBe(0);
    expect(job.at('disconnect')).toBeDefined();
    expect(at - lastPing).toBeGreaterThanOrEqual(ORPHANED_TIMEOUT_MS - 500);
    expect(at - lastPing).toBeLessThan(ORPHANED_TIMEOUT_MS + 2_500);
    expect(job.at('shutdown-callback')).toBeUndefined();
  }, 40_000);

  it('a listener that throws kills the job at once, exit 1, no callbacks (no handler in the library)', async () => {
    const job = await startJob('throw-stock', { FIXTURE_MODE: 'stock', FIXTURE_FAULT: 'throw' });
    expect((await job.exited).code).toBe(1);
    expect(job.at('shutdown-callback')).toBeUndefined();
  }, 40_000);

  it('an unhandled rejection is swallowed by the library (logged at debug): the job runs on', async () => {
    const job = await startJob('reject-stock', { FIXTURE_MODE: 'stock', FIXTURE_FAULT: 'reject' });
    await new Promise((r) => setTimeout(r, 2_000));
    expect(job.child.exitCode).toBeNull();
    job.child.kill('SIGKILL');
  }, 40_000);
});

describe.concurrent('our job process handling, inside that real process', () => {
  it('the worker is lost: no goodbye, and hooks and report run before the orphan exit', async () => {
    const job = await startJob('ours-orphan', { FIXTURE_MODE: 'ours' });
    const lastPing = job.loseWorker();
    const { code, at } = await job.exited;
    expect(code).toBe(0);
    const report = job.marks().find((m) => m.event === 'report');
    expect(report).toMatchObject({ reason: 'drain', hooks: ['timeout'] });
    expect(report!.at).toBeLessThan(at);
    expect(report!.at - lastPing).toBeLessThan(ORPHANED_TIMEOUT_MS);
    expect(job.at('goodbye')).toBeUndefined();
  }, 40_000);

  it.each(['throw', 'reject'])(
    'a listener that %ss: the call ends as error (client told, hook, report) within the crash budget, then exit 1',
    async (fault) => {
      const job = await startJob(`ours-${fault}`, { FIXTURE_MODE: 'ours', FIXTURE_FAULT: fault });
      const { code, at } = await job.exited;
      expect(code).toBe(1);
      expect(job.marks().find((m) => m.event === 'announce')).toMatchObject({ reason: 'error' });
      expect(job.marks().find((m) => m.event === 'report')).toMatchObject({ reason: 'error' });
      expect(job.at('report')).toBeLessThan(at);
      expect(at - job.at('entry')!).toBeLessThan(9_000);
    },
    40_000,
  );
});
