import { initializeLogger } from '@livekit/agents';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ORPHANED_TIMEOUT_MS,
  PING_INTERVAL_MS,
  STALLED_AFTER_MS,
} from '../../agent/process/job-process.ts';
import { otlpReceiver } from '../support/otlp-receiver.ts';

/**
 * agents-js's real job process (`ipc/job_proc_lazy_main.js`), forked and driven over IPC the way
 * its worker does, with a fixture entry. It pins the internals agent/process/job-process.ts and
 * agent/job.ts rely on, then shows our handling inside that real process.
 */
const agentsDist = dirname(createRequire(import.meta.url).resolve('@livekit/agents'));
const JOB_MAIN = join(agentsDist, 'ipc/job_proc_lazy_main.js');
const FIXTURE = resolve(import.meta.dirname, 'fixtures/job-process-agent.ts');
/** The agent's own job module: without a LiveKit server its call fails at setup and ends. */
const JOB_TS = resolve(import.meta.dirname, '../../agent/job.ts');
/** A hooks module whose end-of-call hook throws where nobody catches it. */
const CRASHING_HOOKS = resolve(import.meta.dirname, 'fixtures/crashing-hooks.ts');
const dir = mkdtempSync(join(tmpdir(), 'job-contract-'));
const children: ChildProcess[] = [];
/** Where the `ours` jobs export their traces; each finds its own by its job id. */
let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
beforeAll(async () => (receiver = await otlpReceiver()));
afterAll(async () => {
  children.forEach((c) => c.kill('SIGKILL'));
  await receiver?.close();
});
/** The job's spans that reached the collector while its process was still there. */
const exportedBefore = (jobId: string, exitAt: number) =>
  receiver.posts.filter((p) => p.at <= exitAt && p.body.toString('utf8').includes(jobId));

type Mark = { event: string; at: number; [k: string]: unknown };

async function startJob(name: string, env: Record<string, string>, agent = FIXTURE) {
  const out = join(dir, `${name}.jsonl`);
  // The exporter's periodic send is pushed past the test (a standard OTel variable): a span
  // reaches the collector only if the job flushes it.
  const traced = env.FIXTURE_MODE === 'ours' && {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '600000',
  };
  const child = fork(JOB_MAIN, [agent], {
    env: { PATH: process.env.PATH, FIXTURE_OUT: out, ...traced, ...env },
    stdio: ['ignore', 'pipe', 'ignore', 'ipc'],
  });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
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
  // Whole lines only: the job may be writing the next one as the test reads.
  const marks = (): Mark[] =>
    existsSync(out)
      ? readFileSync(out, 'utf8')
          .split('\n')
          .slice(0, -1)
          .map((l) => JSON.parse(l) as Mark)
      : [];
  if (agent === FIXTURE) await until(() => marks().some((m) => m.event === 'entry'), 10_000);
  return {
    child,
    /** The job process's log (agents-js's and ours, JSON lines). */
    output: () => output,
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
    /** The worker stalls (its event loop blocked, the process stopped): no pings, channel open. */
    stallWorker() {
      clearInterval(pinger);
      return lastPing;
    },
  };
}

type Job = Awaited<ReturnType<typeof startJob>>;

async function until(ok: () => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The agent's own job module run to its exit against a collector that answers after 2.5 s, longer
 * than the whole exit window (JOB_EXIT_GRACE_MS, 2 s by default). Answers the exit code, the job
 * process's log and the spans that reached the collector while the process was still there.
 */
async function jobTsWithSlowCollector(name: string, env: Record<string, string> = {}) {
  const slow = await otlpReceiver({ answerAfterMs: 2_500 });
  try {
    const job = await startJob(
      name,
      {
        LIVEKIT_URL: 'ws://127.0.0.1:1',
        LIVEKIT_API_KEY: 'k',
        LIVEKIT_API_SECRET: 's'.repeat(32),
        OPENAI_API_KEY: 'sk-unused',
        ...env,
        OTEL_EXPORTER_OTLP_ENDPOINT: slow.url,
        OTEL_BSP_SCHEDULE_DELAY: '600000',
      },
      JOB_TS,
    );
    const { code, at } = await job.exited;
    const traced = slow.posts.filter((p) => p.at <= at).map((p) => p.body.toString('utf8'));
    return { code, output: job.output(), traced: traced.join() };
  } finally {
    await slow.close();
  }
}

/** agents-js's own modules, loaded from its dist as its worker loads them (not exported). */
const fromAgents = async <T>(file: string): Promise<T> =>
  (await import(pathToFileURL(join(agentsDist, file)).href)) as T;

type Sent = { case: string; value?: { pingInterval?: number } };
type Supervised = {
  prototype: { initialize(this: { proc: ChildProcess }, ...args: unknown[]): Promise<void> };
};
type Pool = {
  start(): void;
  launchJob(info: unknown): Promise<void>;
  close(): Promise<void>;
};

describe("agents-js's worker, as the design relies on it", () => {
  // The stall watch (agent/process/job-process.ts) counts missed pings: it holds only while the
  // worker pings as often as PING_INTERVAL_MS says. The interval is the pool's literal, not an
  // option.
  it(`pings every job process every ${PING_INTERVAL_MS} ms: the interval its process pool sends in each initializeRequest, warm or started for a job`, async () => {
    initializeLogger({ pretty: false, level: 'fatal' });
    const { SupervisedProc } = await fromAgents<{ SupervisedProc: Supervised }>(
      'ipc/supervised_proc.js',
    );
    const { ProcPool } = await fromAgents<{ ProcPool: new (o: object) => Pool }>(
      'ipc/proc_pool.js',
    );
    // What the pool's processes are sent, read at the channel as the pool initialises each one.
    const sent: Sent[] = [];
    const initialize = SupervisedProc.prototype.initialize;
    SupervisedProc.prototype.initialize = function (...args) {
      const send = this.proc.send.bind(this.proc) as (m: unknown, ...r: unknown[]) => boolean;
      this.proc.send = ((m: Sent, ...r: unknown[]) => (sent.push(m), send(m, ...r))) as never;
      return initialize.apply(this, args);
    };
    const options = {
      agent: FIXTURE,
      initializeTimeout: 20_000,
      closeTimeout: 5_000,
      sessionEndTimeout: 1_000,
      memoryWarnMB: 0,
      memoryLimitMB: 0,
    };
    const warm = new ProcPool({ ...options, numIdleProcesses: 1 });
    const perJob = new ProcPool({ ...options, numIdleProcesses: 0 });
    try {
      warm.start();
      perJob.start();
      void perJob.launchJob({ job: { id: 'AJ_pool', room: { name: 'pool' } } }).catch(() => {});
      await until(() => sent.filter((m) => m.case === 'initializeRequest').length === 2, 20_000);
    } finally {
      SupervisedProc.prototype.initialize = initialize;
      await Promise.all([warm.close(), perJob.close()]);
    }
    const intervals = sent
      .filter((m) => m.case === 'initializeRequest')
      .map((m) => m.value?.pingInterval);
    expect(intervals).toEqual([PING_INTERVAL_MS, PING_INTERVAL_MS]);
    // Three missed pings still leave the call's end most of the orphan window.
    expect(ORPHANED_TIMEOUT_MS - STALLED_AFTER_MS).toBeGreaterThanOrEqual(7_000);
  }, 40_000);
});

/** The stock job, its worker gone or stalled since `lastPing`, exits 0 on the orphan timer alone. */
async function expectOrphanExit(job: Job, lastPing: number) {
  const { code, at } = await job.exited;
  expect(code).toBe(0);
  expect(at - lastPing).toBeGreaterThanOrEqual(ORPHANED_TIMEOUT_MS - 500);
  expect(at - lastPing).toBeLessThan(ORPHANED_TIMEOUT_MS + 2_500);
  expect(job.at('shutdown-callback')).toBeUndefined();
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
    await expectOrphanExit(job, job.loseWorker());
    expect(job.at('disconnect')).toBeDefined();
  }, 40_000);

  it(`a stalled worker (channel open, no pings): the job exits 0 about ${ORPHANED_TIMEOUT_MS / 1000} s after the last ping, without 'disconnect' or its shutdown callbacks`, async () => {
    const job = await startJob('stall', { FIXTURE_MODE: 'stock' });
    await expectOrphanExit(job, job.stallWorker());
    expect(job.at('disconnect')).toBeUndefined();
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
  it.each([
    { worker: 'is lost', name: 'ours-orphan', lose: 'loseWorker' },
    { worker: 'stalls (channel open, no pings)', name: 'ours-stall', lose: 'stallWorker' },
  ] as const)(
    'the worker $worker: no goodbye; hooks, report and the traces flushed before the orphan exit',
    async ({ name, lose }) => {
      const job = await startJob(name, { FIXTURE_MODE: 'ours' });
      const lastPing = job[lose]();
      const { code, at } = await job.exited;
      expect(code).toBe(0);
      const report = job.marks().find((m) => m.event === 'report');
      expect(report, 'the report').toMatchObject({ reason: 'drain', hooks: ['timeout'] });
      expect(report!.at).toBeLessThan(at);
      expect(report!.at - lastPing).toBeLessThan(ORPHANED_TIMEOUT_MS);
      expect(job.at('goodbye')).toBeUndefined();
      const spans = exportedBefore(`AJ_${name}`, at);
      expect(spans.map((p) => p.body.toString('utf8')).join()).toContain('fixture_turn');
    },
    40_000,
  );

  it('the call has ended, the collector is slow: the trailing spans leave before the process does, with no "teardown is stuck" warning', async () => {
    const { code, output, traced } = await jobTsWithSlowCollector('job-ts-slow-collector');
    expect(code).toBe(0);
    expect(output).toContain('"msg":"call ended"');
    expect(output).not.toContain('teardown is stuck');
    expect(traced).toContain('agent_session');
  }, 40_000);

  it('the call crashed while ending, the collector is slow: the crash path owns the exit, exit 1 after the traces left, and no stock exit 0 before it', async () => {
    const { code, output, traced } = await jobTsWithSlowCollector('job-ts-crash-slow-collector', {
      AGENT_HOOKS_MODULE: CRASHING_HOOKS,
    });
    expect(output).toContain('an error escaped an end-of-call hook');
    expect(output).toContain('"msg":"call ended"');
    expect(code).toBe(1);
    expect(output).not.toContain('teardown is stuck');
    expect(traced).toContain('agent_session');
  }, 40_000);

  it.each(['throw', 'reject'])(
    'a listener that %ss: the call ends as error (client told, hook, report) within the crash budget, the traces are flushed, then exit 1',
    async (fault) => {
      const job = await startJob(`ours-${fault}`, { FIXTURE_MODE: 'ours', FIXTURE_FAULT: fault });
      const { code, at } = await job.exited;
      expect(code).toBe(1);
      expect(job.marks().find((m) => m.event === 'announce')).toMatchObject({ reason: 'error' });
      expect(job.marks().find((m) => m.event === 'report')).toMatchObject({ reason: 'error' });
      expect(job.at('report')).toBeLessThan(at);
      expect(at - job.at('entry')!).toBeLessThan(9_000);
      const spans = exportedBefore(`AJ_ours-${fault}`, at);
      expect(spans.map((p) => p.body.toString('utf8')).join()).toContain('fixture_turn');
    },
    40_000,
  );
});
