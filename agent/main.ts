import { cli, ServerOptions } from '@livekit/agents';
import { fileURLToPath } from 'node:url';
import { CallCapacity, defaultIdleProcesses } from './process/capacity.ts';
import { enableCompileCache } from './process/compile-cache.ts';
import { ConfigError, loadAgentConfig, shutdownBudget } from './config.ts';
import { logToStderr, type LogFn } from './log.ts';
import { announceDrain, chooseDrainFile, clearDrain } from './process/drain-signal.ts';
import { chooseJobStartsDir, clearJobStarts } from './process/job-starts.ts';
import { chooseJobFiguresDir, clearJobFigures } from './process/job-figures.ts';
import { serveMetrics, workerMetrics } from './process/metrics.ts';
import { errorMessage } from '../wire-contract/index.ts';
import { startOutboxDrain } from './report/outbox-drain.ts';
import { outboxDirFor, outboxFor } from './report/outbox-store.ts';
import { drainThroughPoolStart } from './process/worker-drain.ts';

/**
 * The worker process: registers with LiveKit under AGENT_NAME (explicit dispatch only) and runs
 * one child process per call from ./job. `start` drains on SIGTERM/SIGINT and exits 143/130.
 */
let config;
try {
  config = loadAgentConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(78); // EX_CONFIG
}
// Before anything forks: every job process inherits the compile cache (process/compile-cache.ts).
const compileCache = enableCompileCache();
if (!compileCache.enabled && compileCache.reason !== 'disabled')
  logToStderr('warn', 'module compile cache off', { reason: compileCache.reason });
const budget = shutdownBudget(config);
// The cap hears from each job process that it has started its call (process/job-starts.ts),
// through a directory the job processes inherit (forked after this line).
const capacity =
  config.AGENT_MAX_CONCURRENT_CALLS > 0
    ? new CallCapacity(
        config.AGENT_MAX_CONCURRENT_CALLS,
        Date.now,
        chooseJobStartsDir(),
        config.LIVEKIT_TARGET_LOAD,
      )
    : undefined;

// This boot's drain file and job figures directory, inherited by every job process (forked
// after this line).
chooseDrainFile();
// Only with /metrics to count them: a file per call that no scrape takes would pile up.
const figuresDir = config.AGENT_METRICS_PORT ? chooseJobFiguresDir() : undefined;
const idleProcesses = !capacity
  ? undefined
  : config.AGENT_IDLE_PROCESSES === 'auto'
    ? defaultIdleProcesses(capacity.cap)
    : Math.min(capacity.cap, config.AGENT_IDLE_PROCESSES);
// The report outbox: jobs keep there what the edge could not take within their cleanup budget;
// this loop (the worker's only, never a job's) delivers it later, across restarts. The resolved
// directory is handed to the jobs, so both sides use the same one.
const outboxDir = outboxDirFor(config);
const outboxLog: LogFn = (level, msg, fields) =>
  logToStderr(level, msg, { ...fields, outbox: outboxDir });
const outbox = outboxDir && config.EDGE_URL ? outboxFor(config, outboxLog) : undefined;
const metrics = workerMetrics({ capacity, idleProcesses: idleProcesses ?? 0, outbox, figuresDir });
let outboxDrain: ReturnType<typeof startOutboxDrain> | undefined;
if (outbox && config.EDGE_URL) {
  process.env.REPORT_OUTBOX_DIR = outboxDir;
  outboxDrain = startOutboxDrain(outbox, {
    edgeUrl: config.EDGE_URL,
    apiKey: config.LIVEKIT_API_KEY,
    apiSecret: config.LIVEKIT_API_SECRET,
    retryMs: config.REPORT_OUTBOX_RETRY_SECONDS * 1000,
    log: outboxLog,
    onPass: metrics.outboxPass,
  });
}
// Prometheus metrics on a port of their own (agents-js's health server is its own).
if (config.AGENT_METRICS_PORT)
  serveMetrics(metrics.registry, config.AGENT_METRICS_PORT, (err) =>
    logToStderr('warn', 'metrics server error', { error: errorMessage(err) }),
  ).catch((err: unknown) => {
    logToStderr('warn', 'metrics server could not start: no /metrics', {
      port: config.AGENT_METRICS_PORT,
      error: errorMessage(err),
    });
    clearJobFigures(); // the job processes' writes then fail quietly, as without the directory
  });
// Runs beside agents-js' own handler (which drains, then closes): calls get DRAIN_TIMEOUT_SECONDS,
// then end themselves with reason "drain", inside the worker's drain timeout.
// agents-js listens `once`: without a listener of ours that stays, a second SIGTERM (a platform
// or an operator repeating itself) would kill the worker mid-drain with Node's default action.
// A second SIGINT still forces the exit: agents-js arms that itself, on purpose (Ctrl-C twice).
let draining = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (draining) return logToStderr('info', `${signal} again: still draining`);
    draining = true;
    announceDrain(Date.now() + config.DRAIN_TIMEOUT_SECONDS * 1000);
    // A stopped Machine keeps its volume, but delivers nothing until it starts again: what the
    // outbox holds goes now, and again in every pass while the calls drain.
    outboxDrain?.shuttingDown();
  });
}
process.once('exit', () => {
  clearDrain();
  clearJobStarts();
  clearJobFigures();
});
// A signal while the pool is still starting a process must not skip the drain
// (process/worker-drain.ts).
drainThroughPoolStart({
  drainTimeoutMs: budget.drainTimeoutMs,
  log: logToStderr,
  // The calls are done: what the outbox holds goes now, within the drain's own deadline (a
  // Machine stopped with reports waiting keeps them on its volume until it starts again).
  afterDrain: async (deadline) => outboxDrain?.finalPass(deadline),
});

const jobModule = new URL(
  import.meta.url.endsWith('.ts') ? './job.ts' : './job.js',
  import.meta.url,
);
cli.runApp(
  new ServerOptions({
    agent: fileURLToPath(jobModule),
    agentName: config.AGENT_NAME,
    wsURL: config.LIVEKIT_URL,
    apiKey: config.LIVEKIT_API_KEY,
    apiSecret: config.LIVEKIT_API_SECRET,
    port: config.AGENT_HEALTH_PORT,
    drainTimeout: budget.drainTimeoutMs,
    shutdownProcessTimeout: budget.shutdownProcessTimeoutMs,
    logLevel: config.LOG_LEVEL,
    // Counting calls instead of CPU: a self-hosted LiveKit server drops a dispatch when no worker
    // reports spare load, and CPU spikes (a build, a noisy neighbour) should not refuse calls.
    ...(capacity && {
      loadFunc: capacity.load,
      requestFunc: capacity.request,
      loadThreshold: capacity.targetLoad,
      // At least one prewarmed process, in dev mode too: only that pool drops finished jobs from
      // activeJobs (without it the count only grows and the worker soon reports itself full).
      numIdleProcesses: idleProcesses,
    }),
  }),
);
