// npm run bench:fleet: the fleet's autoscaling proven on the real parts here. Real workers in
// `start` mode on the local LiveKit server (each its own "Machine", with a small call cap), a
// Prometheus-compatible store (VictoriaMetrics single-node, built from its Go module) scraping
// their /metrics as Fly's scraper does, and a ramp of real calls up and down. At each step the
// autoscaler's own config (agent/autoscaler/fly-autoscaler.yml, its ${VAR}s expanded as
// fly-autoscaler expands them) is run: its queries through the store's query API, its started-
// Machine expressions on their answers. The Machine count must be what the formula promises for
// the calls on the line. fly-autoscaler itself does not build here (the Go module proxy refuses
// github.com/superfly/fly-autoscaler@v0.3.2: 403), so its expressions are evaluated here with the
// same functions (ceil, min, max) rather than by `fly-autoscaler eval`; the Fly Machines API is
// not reachable, so starting and stopping Machines is not exercised (docs/operations.md).
//
// VictoriaMetrics: BENCH_VICTORIA_METRICS, or `GOBIN=~/.cache/livekit-voice-calls/fleet-tools go
// install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@v1.151.0` (the bench
// says so when it is missing). Not part of npm test.
import { dispose } from '@livekit/rtc-node';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentWorker } from '../support/agent-worker.ts';
import { machineCount, readAutoscalerConfig } from '../support/autoscaler-config.ts';
import { CallClient } from '../support/call-client.ts';
import { toolCache } from '../support/tool-cache.ts';
import { freePort, startProcess, waitFor } from '../support/processes.ts';
import { metricValue } from '../support/prometheus-text.ts';
import { System } from '../support/system.ts';
import { percentile, prepareLiveKitBench, printTable } from './table.ts';

const VM_VERSION = 'v1.151.0';
const VM = process.env.BENCH_VICTORIA_METRICS ?? toolCache('fleet-tools/victoria-metrics');
if (!existsSync(VM)) {
  console.error(
    `bench:fleet needs VictoriaMetrics: GOBIN=${toolCache('fleet-tools')} go install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@${VM_VERSION} (or set BENCH_VICTORIA_METRICS)`,
  );
  process.exit(1);
}

const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const CAP = Number(process.env.BENCH_CAP ?? 4);
const STEPS = (process.env.BENCH_STEPS ?? '0,3,6,8,5,1,0').split(',').map(Number);
const APP = 'livekit-voice-agent';
// The autoscaler's knobs, as its fly.toml [env] would set them, sized to this bench.
const knobs: Record<string, string> = {
  FAS_APP_NAME: APP,
  FLEET_CALLS_PER_MACHINE: String(CAP),
  FLEET_HEADROOM_CALLS: '1',
  FLEET_MIN_MACHINES: '1',
  FLEET_MAX_MACHINES: String(WORKERS + 1),
  FLEET_SCALE_DOWN_WINDOW: process.env.BENCH_SCALE_DOWN_WINDOW ?? '20s',
};
const formula = (calls: number) =>
  Math.max(
    Number(knobs.FLEET_MIN_MACHINES),
    Math.min(Number(knobs.FLEET_MAX_MACHINES), Math.ceil((calls + 1) / CAP)),
  );

const bin = prepareLiveKitBench('bench:fleet');
const system = await new System(bin, { agent: false }).start();
const workers: { worker: AgentWorker; metricsPort: number }[] = [];
for (let i = 0; i < WORKERS; i++) {
  const metricsPort = await freePort();
  const worker = await system.startAgent(`agent-${i + 1}`, {
    AGENT_METRICS_PORT: String(metricsPort),
    AGENT_MAX_CONCURRENT_CALLS: String(CAP),
    AGENT_IDLE_PROCESSES: '1',
  });
  workers.push({ worker, metricsPort });
}

// The store, scraping every worker each second, each series labelled with the app as Fly's is.
const vmPort = await freePort();
const scrapeConfig = join(system.dir, 'scrape.yml');
writeFileSync(
  scrapeConfig,
  [
    'scrape_configs:',
    '  - job_name: agents',
    '    scrape_interval: 1s',
    '    static_configs:',
    `      - targets: [${workers.map((w) => `"127.0.0.1:${w.metricsPort}"`).join(', ')}]`,
    `        labels: { app: "${APP}" }`,
    '',
  ].join('\n'),
);
const vm = startProcess(
  VM,
  [
    `-storageDataPath=${join(system.dir, 'vm-data')}`,
    `-httpListenAddr=127.0.0.1:${vmPort}`,
    `-promscrape.config=${scrapeConfig}`,
    // Answer with the newest samples (the default hides the last 30 s), never from a cache.
    '-search.latencyOffset=0s',
    '-search.disableCache',
  ],
  { logFile: join(system.dir, 'victoria-metrics.log') },
);
const vmUrl = `http://127.0.0.1:${vmPort}`;
await waitFor('VictoriaMetrics up', async () => (await fetch(`${vmUrl}/health`)).ok || undefined, {
  timeoutMs: 30_000,
  intervalMs: 200,
}).catch(() => undefined);

// The autoscaler's config, read as fly-autoscaler reads it.
const config = readAutoscalerConfig({ ...knobs, FAS_PROMETHEUS_ADDRESS: vmUrl });

/** A collector's query through the store's own query API, as fly-autoscaler asks it. */
async function collect(address: string, query: string): Promise<number> {
  const res = await fetch(`${address}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as {
    status: string;
    error?: string;
    data?: { result: { value: [number, string] }[] };
  };
  if (body.status !== 'success') throw new Error(`query failed: ${body.error} (${query})`);
  const first = body.data?.result[0];
  if (!first) throw new Error(`empty prometheus result (${query})`);
  return Number(first.value[1]);
}
/** Each worker's own /metrics, as the store scrapes it. */
async function workerFigures() {
  return Promise.all(
    workers.map(async ({ metricsPort }) => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const read = (name: string) => metricValue(text, name) ?? NaN;
      return {
        running: read('voice_agent_calls_running'),
        starting: read('voice_agent_calls_starting'),
      };
    }),
  );
}

const calls: CallClient[] = [];
/** A caller dials (a token from the edge, then the join) and is greeted: how long that took (ms). */
async function callIn(): Promise<number> {
  const client = new CallClient();
  const dialled = performance.now();
  await client.join(system.edge.url, `Bearer ${system.edge.appKey}`, {
    participant_identity: `fleet-${Math.random().toString(36).slice(2)}`,
  });
  await client.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 60_000);
  calls.push(client);
  return performance.now() - dialled;
}

const rows: (string | number)[][] = [];
let failed = 0;
try {
  for (const [i, target] of STEPS.entries()) {
    while (calls.length > target) await calls.pop()!.leave();
    // Up in a burst: the new calls dial at once.
    const greetings = (
      await Promise.all(Array.from({ length: target - calls.length }, () => callIn()))
    ).sort((a, b) => a - b);
    // Settled: the workers count exactly the calls on the line, and the store has scraped that.
    const perWorker = await waitFor(
      `step ${i}: the workers count ${target} calls`,
      async () => {
        const f = await workerFigures();
        return f.reduce((n, w) => n + w.running + w.starting, 0) === target ? f : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const values: Record<string, number> = {};
    await waitFor(
      `step ${i}: the store has ${target} calls`,
      async () => {
        for (const c of config['metric-collectors'])
          values[c['metric-name']] = await collect(c.address, c.query);
        return values.calls_now === target || undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    // A worker past its cap is a broken promise, whatever the Machine count says.
    const overCap = perWorker.filter((w) => w.running + w.starting > CAP).length;
    if (overCap) {
      failed++;
      console.error(`step ${i}: ${overCap} worker(s) over the cap of ${CAP}`);
    }
    const up = machineCount(config['min-started-machine-count'], values);
    const down = machineCount(config['max-started-machine-count'], values);
    const ok = up === formula(target) && down >= up;
    if (!ok) failed++;
    rows.push([
      i,
      target,
      perWorker.map((w) => `${w.running}+${w.starting}`).join(' / '),
      values.calls_now!,
      values.calls_peak!,
      up,
      down,
      formula(target),
      ok ? 'yes' : 'NO',
      greetings.length
        ? `${Math.round(percentile(greetings, 50))} / ${Math.round(greetings.at(-1)!)}`
        : '',
    ]);
  }
  // Quiet for the scale-down window: the slower bound comes down to the calls on the line.
  const windowMs = Number.parseInt(knobs.FLEET_SCALE_DOWN_WINDOW!, 10) * 1000;
  const settled = await waitFor(
    'the scale-down window passed',
    async () => {
      const values: Record<string, number> = {};
      for (const c of config['metric-collectors'])
        values[c['metric-name']] = await collect(c.address, c.query);
      const down = machineCount(config['max-started-machine-count'], values);
      return down === formula(calls.length) ? { values, down } : undefined;
    },
    { timeoutMs: windowMs + 30_000, intervalMs: 1000 },
  ).catch(() => undefined);
  if (!settled) failed++;
  rows.push([
    'after the window',
    calls.length,
    '',
    settled?.values.calls_now ?? '?',
    settled?.values.calls_peak ?? '?',
    settled ? machineCount(config['min-started-machine-count'], settled.values) : '?',
    settled?.down ?? '?',
    formula(calls.length),
    settled ? 'yes' : 'NO',
    '',
  ]);
} finally {
  printTable(
    `bench:fleet: ${WORKERS} workers (call cap ${CAP} each), VictoriaMetrics ${VM_VERSION} scraping /metrics every 1 s; Machines = max(${knobs.FLEET_MIN_MACHINES}, min(${knobs.FLEET_MAX_MACHINES}, ceil((calls + ${knobs.FLEET_HEADROOM_CALLS}) / ${CAP}))), scale-down window ${knobs.FLEET_SCALE_DOWN_WINDOW}`,
    [
      'step',
      'calls on the line',
      'per worker: running+starting',
      'calls_now (store)',
      'calls_peak (store)',
      'started Machines: up (min)',
      'started Machines: down (max)',
      'the formula',
      'as promised',
      'new calls greeted, p50 / slowest ms',
    ],
    rows,
  );
  await Promise.allSettled(calls.map((c) => c.leave()));
  await vm.stop();
  await system.stop();
  await dispose();
}
if (failed) {
  console.error(`bench:fleet: ${failed} step(s) not as the formula promises`);
  process.exit(1);
}
process.exit(0);
