// npm run bench:job-start: where a job process's start goes, in CPU ms and wall ms (issue #28's
// goals: ready in ≤ 300 ms of CPU, ≤ 1 % of a core while idle). Three tables:
// 1. module loading, in fresh Node processes that load what a job process loads, in its order,
//    package group by package group (a module two groups share counts in the first), without and
//    with Node's module compile cache (NODE_COMPILE_CACHE; the agent's job processes run with it,
//    agent/process/compile-cache.ts, so parts 2 and 3 measure them with it, filled by the first call);
// 2. one job process's life up to the greeting's first audio, phase by phase, from marks the job
//    process writes itself (AGENT_START_MARKS, agent/process/start-marks.ts; the first one by a
//    preload, job-start-probe.mjs). The worker runs in `dev` mode with the stock load
//    (AGENT_MAX_CONCURRENT_CALLS=0), where agents-js keeps no process warm and forks one per call:
//    every phase then runs on the caller's path, one after the other, with no other job process
//    starting beside it. One call warms the host first (the greeting's audio cache), then
//    BENCH_RUNS calls, one at a time;
// 3. the pool as deployed (`start`, AGENT_IDLE_PROCESSES=2): the CPU its warm idle job processes
//    use over BENCH_IDLE_SECONDS (and, in a pool of its own, with agents-js's event-loop monitor
//    off), then BENCH_RUNS calls on warm processes (a replacement starts beside each, as agents-js
//    refills at once).
// CPU is user + system time of every thread of the process (process.cpuUsage or /proc).
import { dispose } from '@livekit/rtc-node';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';
import type { StartMark } from '../../agent/process/start-marks.ts';
import { startAgentWorker, type AgentWorker } from '../support/agent-worker.ts';
import { CallClient } from '../support/call-client.ts';
import { sealedDispatchFor } from '../support/dispatch-metadata.ts';
import { DEV_KEY, DEV_SECRET, startLiveKit } from '../support/livekit-server.ts';
import { startOpenAIStandIn } from '../support/openai-stand-in.ts';
import { waitFor } from '../support/processes.ts';
import { processTree, processUse } from './process-tree.ts';
import { benchAgentEnv, failedCell, percentile, prepareLiveKitBench, printTable } from './table.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);
const GREETING = 'Hello! How can I help you today?';
const ROOT = resolve(import.meta.dirname, '../..');

const bin = prepareLiveKitBench('bench:job-start');
const dir = mkdtempSync(join(tmpdir(), 'lkvc-bench-job-start-'));
const median = (values: number[]) => percentile(values, 50);
const ms = (v: number) => (Number.isFinite(v) ? Math.round(v) : '—');

// ---- 1. Module loading ----------------------------------------------------------------------

const agentsRequire = createRequire(join(ROOT, 'node_modules/@livekit/agents/package.json'));
/** As agents-js resolves it: its own nested copy when it has one (pino), else the hoisted one. */
const asAgentsLoadsIt = (pkg: string) => {
  const path = agentsRequire.resolve(pkg);
  return path.includes('/@livekit/agents/node_modules/') ? pathToFileURL(path).href : pkg;
};
const lazyMain = pathToFileURL(
  join(ROOT, 'node_modules/@livekit/agents/dist/ipc/job_proc_lazy_main.js'),
).href;
const ourJob = pathToFileURL(join(ROOT, 'dist/agent/job.js')).href;
const otel = [
  'api',
  'core',
  'resources',
  'sdk-trace-base',
  'sdk-trace-node',
  'sdk-metrics',
  'sdk-logs',
  'api-logs',
  'exporter-trace-otlp-proto',
  'exporter-logs-otlp-proto',
  'exporter-metrics-otlp-proto',
  'instrumentation-pino',
].map((p) => `@opentelemetry/${p}`);
/** The groups, in the order a job process meets them: agents-js's job runner imports first. */
const groups: [string, string[]][] = [
  ['@livekit/rtc-node (WebRTC, native)', ['@livekit/rtc-node']],
  ['@bufbuild/protobuf, @livekit/protocol', ['@bufbuild/protobuf', '@livekit/protocol']],
  ['OpenTelemetry (12 packages: SDKs, exporters)', otel],
  ['pino, pino-pretty', ['pino', 'pino-pretty'].map(asAgentsLoadsIt)],
  ['livekit-server-sdk', ['livekit-server-sdk']],
  ['openai (the SDK)', ['openai']],
  ['sharp (images)', ['sharp']],
  [
    'other agents-js dependencies (ws, ofetch, form-data, zod, …)',
    [
      'ws',
      'ofetch',
      'form-data',
      'fluent-ffmpeg',
      'commander',
      'jsonrepair',
      'zod',
      'zod-to-json-schema',
      'heap-js',
      'pidusage',
      '@livekit/av',
      '@livekit/local-inference',
    ],
  ],
  ["agents-js's own modules (job runner, then the index)", [lazyMain, '@livekit/agents']],
  ['@livekit/agents-plugin-openai', ['@livekit/agents-plugin-openai']],
  ['ours (dist/agent/job.js, with jose)', ['jose', ourJob]],
];
type Step = { label: string; cpuMs: number; wallMs: number };
function loadSteps(env: Record<string, string> = {}): Step[] {
  const steps = groups.flatMap(([label, specs]) =>
    specs.map((specifier) => ({ label, specifier })),
  );
  const out = execFileSync(
    process.execPath,
    [join(import.meta.dirname, 'job-start-imports.mjs'), JSON.stringify(steps)],
    { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH, ...env } },
  );
  // One row per group: its packages' steps summed.
  const byGroup = new Map<string, Step>();
  for (const s of JSON.parse(out) as Step[]) {
    const g = byGroup.get(s.label) ?? { label: s.label, cpuMs: 0, wallMs: 0 };
    g.cpuMs += s.cpuMs;
    g.wallMs += s.wallMs;
    byGroup.set(s.label, g);
  }
  return [...byGroup.values()];
}
/**
 * The job process's own sequence (runner, then our module), for the total without the split; with
 * `count`, how many module files that loads.
 */
function loadAsAJobDoes(count?: 'count'): number {
  const out = execFileSync(
    process.execPath,
    [
      join(import.meta.dirname, 'job-start-imports.mjs'),
      JSON.stringify([
        { label: 'runner', specifier: lazyMain },
        { label: 'ours', specifier: ourJob },
      ]),
      ...(count ? ['--count'] : []),
    ],
    { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH } },
  );
  if (count) return (JSON.parse(out) as { modules: number }).modules;
  return (JSON.parse(out) as Step[]).slice(1).reduce((n, s) => n + s.cpuMs, 0);
}

const cacheDir = join(dir, 'compile-cache');
loadSteps({ NODE_COMPILE_CACHE: cacheDir }); // fills the cache
const cold: Step[][] = [];
const cached: Step[][] = [];
const whole: number[] = [];
for (let r = 0; r < RUNS; r++) {
  cold.push(loadSteps());
  cached.push(loadSteps({ NODE_COMPILE_CACHE: cacheDir }));
  whole.push(loadAsAJobDoes());
}
const loadRows = cold[0]!.map((s, i) => [
  s.label,
  ms(median(cold.map((run) => run[i]!.cpuMs))),
  ms(median(cold.map((run) => run[i]!.wallMs))),
  ms(median(cached.map((run) => run[i]!.cpuMs))),
]);
const sum = (runs: Step[][], from: number) =>
  median(runs.map((run) => run.slice(from).reduce((n, s) => n + s.cpuMs, 0)));
loadRows.push([
  '**all modules** (rows above but the first)',
  ms(sum(cold, 1)),
  '',
  ms(sum(cached, 1)),
]);
printTable(
  `A job process's modules, loaded in a fresh Node (bench:job-start, median of ${RUNS})`,
  ['step', 'CPU ms', 'wall ms', 'CPU ms with NODE_COMPILE_CACHE'],
  loadRows,
);
console.log(
  `\nLoaded as a job process loads them (the runner, then dist/agent/job.js; no split): ${ms(median(whole))} CPU ms (median), ${loadAsAJobDoes('count')} module files.`,
);

// ---- 2. and 3. A job process's life, against the real LiveKit server --------------------------

const openai = await startOpenAIStandIn();
// What the real services take before their first byte, as bench:capacity models them.
openai.sttDelayMs = Number(process.env.BENCH_STT_MS ?? 150);
openai.llmFirstTokenMs = Number(process.env.BENCH_LLM_MS ?? 300);
openai.ttsDelayMs = Number(process.env.BENCH_TTS_MS ?? 200);
const livekit = await startLiveKit(bin, dir);
const probe = pathToFileURL(join(import.meta.dirname, 'job-start-probe.mjs')).href;

function readMarks(file: string): Map<number, Map<string, StartMark>> {
  const byPid = new Map<number, Map<string, StartMark>>();
  if (!existsSync(file)) return byPid;
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const m = JSON.parse(line) as StartMark;
    if (!byPid.has(m.pid)) byPid.set(m.pid, new Map());
    byPid.get(m.pid)!.set(m.phase, m);
  }
  return byPid;
}

/** The worker's process tree: pid → CPU seconds so far. */
function cpuOfTree(root: number): Map<number, number> {
  return new Map([...processTree(root)].map(([pid, { cpuSeconds }]) => [pid, cpuSeconds]));
}
const cpuSeconds = (pid: number) => processUse(pid)?.cpuSeconds;

/** Waits (bounded) until no process under the worker uses more than a tenth of a core. */
async function quiet(worker: AgentWorker) {
  let before = cpuOfTree(worker.proc.child.pid!);
  await waitFor(
    'the agent worker to be quiet',
    async () => {
      await new Promise((r) => setTimeout(r, 1000));
      const now = cpuOfTree(worker.proc.child.pid!);
      const busy = [...now].some(([pid, s]) => s - (before.get(pid) ?? s) > 0.1);
      before = now;
      return !busy;
    },
    { timeoutMs: 120_000, intervalMs: 0 },
  );
}

type Call = { room: string; connectedAt: number; greetedAt?: number; failed?: string };
async function call(agentName: string, n: number): Promise<Call> {
  const room = `job-start-${agentName}-${n}-${Date.now().toString(36)}`;
  const identity = `caller-${n}`;
  const at = new AccessToken(DEV_KEY, DEV_SECRET, { identity, ttl: 600 });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true });
  at.roomConfig = new RoomConfiguration({
    agents: [
      new RoomAgentDispatch({ agentName, metadata: await sealedDispatchFor(room, identity) }),
    ],
  });
  const client = new CallClient();
  client.watchAgentAudio();
  const connectedAt = Date.now();
  try {
    await client.connect(livekit.url, await at.toJwt(), room, identity);
    const heard = await client
      .publishMicrophone(undefined, 30_000)
      .then(() => client.waitForEvent('agent-audio', () => true, 30_000))
      .catch((err: unknown) => String(err));
    return typeof heard === 'string'
      ? { room, connectedAt, failed: heard }
      : { room, connectedAt, greetedAt: heard.at };
  } finally {
    await client.leave().catch(() => {});
  }
}

/** The job process that took `room`'s call: the one whose `entry` mark came after `since`. */
async function jobOf(file: string, since: number): Promise<Map<string, StartMark> | undefined> {
  return waitFor(
    'the job process to mark its first speech',
    async () =>
      [...readMarks(file).values()].find(
        (m) => (m.get('entry')?.at ?? 0) >= since && m.has('first-speech'),
      ),
    { timeoutMs: 30_000, intervalMs: 100 },
  ).catch(() => undefined);
}

async function exited(pid: number) {
  await waitFor('the job process to exit', async () => cpuSeconds(pid) === undefined, {
    timeoutMs: 60_000,
    intervalMs: 100,
  });
}

function workerEnv(name: string, marks: string, extra: Record<string, string>) {
  return {
    ...benchAgentEnv(livekit.url, openai.url),
    LOG_LEVEL: 'info',
    AGENT_NAME: name,
    AGENT_AUDIO_INPUT: 'true',
    AGENT_GREETING: GREETING,
    IDLE_PROMPT_SECONDS: '0',
    AGENT_START_MARKS: marks,
    // BENCH_CPU_PROF=<dir>: every process of the worker also writes a V8 CPU profile there at
    // its exit (open one in Chrome DevTools); the profiler's cost then inflates the tables.
    NODE_OPTIONS: [
      `--import=${probe}`,
      ...(process.env.BENCH_CPU_PROF
        ? ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env.BENCH_CPU_PROF)}`]
        : []),
    ].join(' '),
    // BENCH_COMPILE_CACHE=off: job processes without Node's compile cache, as before issue #28's
    // cut (the worker then neither enables it nor hands it down).
    ...(process.env.BENCH_COMPILE_CACHE === 'off' && { NODE_DISABLE_COMPILE_CACHE: '1' }),
    ...extra,
  };
}

const workers: AgentWorker[] = [];
process.once('exit', () => {
  for (const w of workers)
    try {
      process.kill(-w.proc.child.pid!, 'SIGKILL');
    } catch {
      /* already stopped */
    }
});

/** Between two marks of one process: CPU ms and wall ms. */
const span = (m: Map<string, StartMark>, from: string | undefined, to: string) => {
  const a = from ? m.get(from) : { cpuMs: 0, wallMs: 0 };
  const b = m.get(to);
  return a && b ? { cpu: b.cpuMs - a.cpuMs, wall: b.wallMs - a.wallMs } : undefined;
};
type Phase = [label: string, from: string | undefined, to: string];
function phaseRows(jobs: Map<string, StartMark>[], phases: Phase[]) {
  return phases.map(([label, from, to]) => {
    const spans = jobs.flatMap((m) => span(m, from, to) ?? []);
    return [label, ms(median(spans.map((s) => s.cpu))), ms(median(spans.map((s) => s.wall)))];
  });
}
const callerRow = (calls: Call[]) => {
  const ok = calls.flatMap((c) => (c.greetedAt ? [c.greetedAt - c.connectedAt] : []));
  return [
    "the caller's view: connect → greeting heard",
    '',
    ms(median(ok)),
    failedCell(
      calls.length - ok.length,
      calls.flatMap((c) => c.failed ?? []),
    ),
  ];
};

// 2. One job process forked per call (dev mode, stock load: agents-js keeps none warm).
const onDemandMarks = join(dir, 'on-demand.jsonl');
const onDemand = await startAgentWorker(
  dir,
  workerEnv('job-start-on-demand', onDemandMarks, {
    AGENT_MAX_CONCURRENT_CALLS: '0',
    // The stock load is the host's CPU use, and LiveKit dispatches nothing to a worker it thinks
    // full: on a host busy with other work, calls then find no agent. 64 CPUs keep it taking them.
    NUM_CPUS: '64',
  }),
  'job-start-on-demand',
  undefined,
  'dev',
);
workers.push(onDemand);
const onDemandJobs: Map<string, StartMark>[] = [];
const onDemandCalls: Call[] = [];
for (let n = 0; n <= RUNS; n++) {
  await quiet(onDemand);
  const c = await call('job-start-on-demand', n);
  const job = await jobOf(onDemandMarks, c.connectedAt);
  if (job) await exited(job.get('entry')!.pid);
  if (n === 0) continue; // the host's first call: it makes the greeting's audio cache
  onDemandCalls.push(c);
  if (job) onDemandJobs.push(job);
}
await onDemand.stop('SIGTERM');
if (!onDemandJobs.some((m) => m.has('node-ready')))
  console.warn('no node-ready mark: the preload did not run in the job processes');
printTable(
  `One job process from fork to the greeting's first audio (bench:job-start, dev mode, forked per call, median of ${RUNS})`,
  ['phase', 'CPU ms', 'wall ms', 'failed calls'],
  [
    ...phaseRows(onDemandJobs, [
      ['Node start (process start → first line of JS)', undefined, 'node-ready'],
      ['module loading (agents-js, rtc-node, plugins, ours)', 'node-ready', 'modules-loaded'],
      ['initialize request, logger', 'modules-loaded', 'prewarm-start'],
      ['`prewarm` (our greeting cache; no VAD)', 'prewarm-start', 'prewarm-end'],
      ['**ready** (a warm process: all of the above)', undefined, 'prewarm-end'],
      ['job request → entry', 'prewarm-end', 'entry'],
      ['session start (entry → AgentSession.start done, room joined)', 'entry', 'session-started'],
      ["→ the greeting's first audio (agent speaking)", 'session-started', 'first-speech'],
      ['**total** (process start → first audio)', undefined, 'first-speech'],
    ]).map((r) => [...r, '']),
    callerRow(onDemandCalls),
  ],
);

// 3. The pool as deployed: its warm processes idle, then calls on them.
/** A worker with two warm job processes, and the job processes' marks. */
async function startPool(name: string, extra: Record<string, string> = {}) {
  const marks = join(dir, `${name}.jsonl`);
  const worker = await startAgentWorker(
    dir,
    workerEnv(name, marks, {
      // Far above the calls here: the cap plays no part in what this measures.
      AGENT_MAX_CONCURRENT_CALLS: '64',
      AGENT_IDLE_PROCESSES: '2',
      ...extra,
    }),
    name,
  );
  workers.push(worker);
  const warm = () =>
    [...readMarks(marks).values()].filter(
      (m) =>
        m.has('prewarm-end') &&
        !m.has('entry') &&
        cpuSeconds(m.get('prewarm-end')!.pid) !== undefined,
    );
  const ready = async () => {
    await waitFor('two warm job processes', async () => warm().length >= 2, {
      timeoutMs: 120_000,
    });
    await quiet(worker);
  };
  return { name, marks, worker, warm, ready };
}
/** The CPU the pool's warm idle job processes and its worker use over IDLE_SECONDS, % of a core. */
async function idleShares(pool: Awaited<ReturnType<typeof startPool>>) {
  await pool.ready();
  const idle = pool.warm().map((m) => m.get('prewarm-end')!.pid);
  const workerPid = pool.worker.proc.child.pid!;
  const before = new Map([workerPid, ...idle].map((pid) => [pid, cpuSeconds(pid) ?? 0]));
  const started = Date.now();
  await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
  const wallS = (Date.now() - started) / 1000;
  const share = (pid: number) => (((cpuSeconds(pid) ?? NaN) - before.get(pid)!) / wallS) * 100;
  return { jobs: idle.map(share), worker: share(workerPid), seconds: Math.round(wallS) };
}

// The same pool with agents-js's event-loop monitor off (its public switch): what that costs.
const unmonitored = await startPool('job-start-pool-unmonitored', {
  LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS: '0',
});
const idleUnmonitored = await idleShares(unmonitored);
await unmonitored.worker.stop('SIGTERM');

const pool = await startPool('job-start-pool');
const idleAsDeployed = await idleShares(pool);

const poolJobs: Map<string, StartMark>[] = [];
const poolCalls: Call[] = [];
for (let n = 0; n <= RUNS; n++) {
  await pool.ready();
  const c = await call(pool.name, n);
  const job = await jobOf(pool.marks, c.connectedAt);
  if (job) await exited(job.get('entry')!.pid);
  if (n === 0) continue; // as above
  poolCalls.push(c);
  if (job) poolJobs.push(job);
}
printTable(
  `The pool as deployed (bench:job-start, start mode, AGENT_IDLE_PROCESSES=2, median of ${RUNS})`,
  ['phase', 'CPU ms', 'wall ms', 'failed calls'],
  [
    ...phaseRows(poolJobs, [
      ['**ready** (its start, while the previous call ran)', undefined, 'prewarm-end'],
      ['session start (entry → AgentSession.start done, room joined)', 'entry', 'session-started'],
      ["→ the greeting's first audio (agent speaking)", 'session-started', 'first-speech'],
    ]).map((r) => [...r, '']),
    callerRow(poolCalls),
    ...(
      [
        ['a warm idle job process', idleAsDeployed],
        [
          "…with agents-js's event-loop monitor off (LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS=0)",
          idleUnmonitored,
        ],
      ] as const
    ).map(([label, { jobs, worker, seconds }]) => [
      `${label}, over ${seconds} s (each: ${jobs.map((s) => `${s.toFixed(1)} %`).join(', ')}; its worker: ${worker.toFixed(1)} %)`,
      `${median(jobs).toFixed(1)} % of a core`,
      '',
      '',
    ]),
  ],
);

await pool.worker.stop('SIGTERM');
await livekit.stop();
await openai.close();
await dispose();
