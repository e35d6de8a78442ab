import { statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { END_REASON_VALUES } from '../../wire-contract/index.ts';
import type { OutboxFile, ReportOutbox } from '../report/outbox-store.ts';
import type { CallCapacity } from './capacity.ts';
import { takeJobFigures, type ReportFate } from './job-figures.ts';
import { jobProcessCount } from './job-processes.ts';

/**
 * The worker's Prometheus metrics, for Fly's scraper (fly.toml [metrics]) and an autoscaler's
 * query (docs/operations.md, the fleet). agents-js's health server answers `/` and `/worker` only,
 * so these are served on a port of their own. What the worker knows is read at each scrape (the
 * cap, the outbox); what lives in job processes (how each call ended, its report, its turns)
 * reaches the worker as files (process/job-figures.ts), folded in at each scrape.
 */
export type MetricSources = {
  capacity?: CallCapacity;
  /** Job processes agents-js keeps warm (its `numIdleProcesses`). */
  idleProcesses: number;
  outbox?: ReportOutbox;
  /** Where this boot's job processes leave their calls' figures. */
  figuresDir?: string;
  /** This worker's job processes (process/job-processes.ts). */
  jobProcesses?: () => number | undefined;
  now?: () => number;
};

const REPORT_FATES: (ReportFate | 'delivered_from_outbox' | 'given_up')[] = [
  'delivered',
  'kept',
  'refused',
  'failed',
  'not_sent',
  'delivered_from_outbox',
  'given_up',
];

export type WorkerMetrics = {
  registry: Registry;
  /** The outbox loop's word after each pass (outbox-drain.ts). */
  outboxPass(result: { delivered: number; dropped: number }): void;
};

export function workerMetrics(s: MetricSources): WorkerMetrics {
  const registry = new Registry();
  const registers = [registry];
  const now = s.now ?? Date.now;
  const prefix = 'voice_agent_';
  // What a scrape reads of the cap and the outbox, read once per scrape (below) and shared by
  // the gauges that show it.
  let seen = { calls: { listed: 0, starting: 0, greeted: 0 }, outbox: [] as OutboxFile[] };

  /** A gauge read at each scrape; a value it cannot know (undefined) leaves the last one (0 at first). */
  const gauge = (name: string, help: string, value: () => number | undefined) =>
    new Gauge({
      name: `${prefix}${name}`,
      help,
      registers,
      collect() {
        const v = value();
        if (v !== undefined) this.set(v);
      },
    });

  // The cap's count, split by the greeting: a call is starting from its dispatch's acceptance until
  // its agent first speaks, running after. The autoscaler counts both (voice_agent_calls).
  gauge(
    'calls',
    'Calls this worker holds, as its cap counts them: accepted, starting or running.',
    () => seen.calls.listed + seen.calls.starting,
  );
  gauge('calls_running', 'Calls whose agent has greeted the caller.', () => seen.calls.greeted);
  gauge(
    'calls_starting',
    'Calls accepted whose agent has not greeted the caller yet.',
    () => seen.calls.listed - seen.calls.greeted + seen.calls.starting,
  );
  gauge(
    'call_cap',
    'Most calls this worker runs at once (AGENT_MAX_CONCURRENT_CALLS); 0: no cap.',
    () => s.capacity?.cap ?? 0,
  );
  gauge(
    'warm_processes',
    'Job processes started and waiting for a call (this worker’s job processes less its running calls).',
    () => {
      const all = (s.jobProcesses ?? jobProcessCount)();
      return all === undefined ? undefined : Math.max(0, all - seen.calls.listed);
    },
  );
  gauge(
    'idle_processes_target',
    'Job processes kept warm for the next calls (AGENT_IDLE_PROCESSES).',
    () => s.idleProcesses,
  );
  new Counter({
    name: `${prefix}dispatches_refused_total`,
    help: 'Dispatches refused at the call cap (LiveKit offers them to another worker).',
    registers,
    collect() {
      this.reset();
      this.inc(s.capacity?.refused ?? 0);
    },
  });

  gauge('outbox_reports', 'Reports waiting in the outbox for the edge.', () => seen.outbox.length);
  gauge('outbox_bytes', 'Bytes of the reports waiting in the outbox.', () => {
    let bytes = 0;
    for (const f of seen.outbox)
      try {
        bytes += statSync(f.path).size;
      } catch {
        /* delivered meanwhile */
      }
    return bytes;
  });
  gauge(
    'outbox_oldest_age_seconds',
    'How long the oldest report in the outbox has waited (0: none waits).',
    () => {
      const oldest = seen.outbox[0];
      return oldest ? Math.max(0, (now() - oldest.queuedAt) / 1000) : 0;
    },
  );

  const ended = new Counter({
    name: `${prefix}calls_ended_total`,
    help: 'Calls ended, by end reason (wire-contract/end-reasons.ts).',
    labelNames: ['reason'],
    registers,
  });
  const reports = new Counter({
    name: `${prefix}reports_total`,
    help: 'End-of-call reports, by fate: delivered (by the job), kept (in the outbox), refused, failed, not_sent, delivered_from_outbox and given_up (by the worker).',
    labelNames: ['fate'],
    registers,
  });
  const turns = new Histogram({
    name: `${prefix}turn_latency_seconds`,
    help: 'Answered turns: end of the caller’s speech to the agent’s first audio.',
    buckets: [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
    registers,
  });
  const greetings = new Histogram({
    name: `${prefix}greeting_latency_seconds`,
    help: 'Calls greeted: the job’s entry (its call handed to a process) to the agent’s first audio.',
    buckets: [0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 20],
    registers,
  });
  const processStarts = new Histogram({
    name: `${prefix}job_process_ready_seconds`,
    help: 'Job processes that ran a call: their start to ready for a call (modules loaded, prewarm done).',
    buckets: [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
    registers,
  });
  // Every label at 0 from the start, so a rate() sees the first one.
  for (const reason of END_REASON_VALUES) ended.inc({ reason }, 0);
  for (const fate of REPORT_FATES) reports.inc({ fate }, 0);

  // Before each scrape renders: the cap and the outbox read once, and the job files folded in.
  const render = registry.metrics.bind(registry);
  registry.metrics = async () => {
    seen = {
      calls: s.capacity?.counts() ?? { listed: 0, starting: 0, greeted: 0 },
      outbox: s.outbox?.list() ?? [],
    };
    for (const f of takeJobFigures(s.figuresDir)) {
      if ((END_REASON_VALUES as readonly string[]).includes(f.end_reason))
        ended.inc({ reason: f.end_reason });
      if (REPORT_FATES.includes(f.report)) reports.inc({ fate: f.report });
      for (const ms of f.turn_e2e_ms ?? []) if (ms >= 0) turns.observe(ms / 1000);
      if (typeof f.greeting_ms === 'number' && f.greeting_ms >= 0)
        greetings.observe(f.greeting_ms / 1000);
      if (typeof f.process_ready_ms === 'number' && f.process_ready_ms >= 0)
        processStarts.observe(f.process_ready_ms / 1000);
    }
    return render();
  };

  return {
    registry,
    outboxPass({ delivered, dropped }) {
      if (delivered) reports.inc({ fate: 'delivered_from_outbox' }, delivered);
      if (dropped) reports.inc({ fate: 'given_up' }, dropped);
    },
  };
}

/**
 * Serves `GET /metrics` (Prometheus text format) on `port`; anything else is a 404. An error once
 * it listens (an accept that fails) is logged, never the worker's end.
 */
export function serveMetrics(
  registry: Registry,
  port: number,
  onError: (err: Error) => void = () => {},
): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(503, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => {
      server.off('error', reject);
      server.on('error', onError);
      server.unref();
      resolve(server);
    });
  });
}
