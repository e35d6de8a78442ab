// The fleet's autoscaler config (agent/autoscaler/): what fly-autoscaler reads agrees with its
// app's fly.toml, with the agent's fly.toml and metrics, and its expressions give the Machine
// count the docs promise. `npm run bench:fleet` runs the same config against real workers and a
// real Prometheus-compatible store.
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { workerMetrics } from '../../agent/process/metrics.ts';
import {
  AUTOSCALER_CONFIG,
  machineCount,
  readAutoscalerConfig,
} from '../support/autoscaler-config.ts';

const yamlText = readFileSync(AUTOSCALER_CONFIG, 'utf8');
const app = parseToml(readFileSync('agent/autoscaler/fly.toml', 'utf8')) as any;
const agent = parseToml(readFileSync('fly.toml', 'utf8')) as any;
const config = readAutoscalerConfig({
  ...app.env,
  FAS_API_TOKEN: 'FlyV1 x',
  FAS_PROMETHEUS_TOKEN: 'FlyV1 y',
}) as any;

describe('the autoscaler config', () => {
  it('every ${VAR} it names is set by its app (env or a documented secret)', () => {
    const settings = yamlText
      .split('\n')
      .filter((l) => !/^\s*#/.test(l))
      .join('\n');
    const names = [...settings.matchAll(/\$\{?(\w+)\}?/g)].map((m) => m[1]!);
    const secrets = ['FAS_API_TOKEN', 'FAS_PROMETHEUS_TOKEN'];
    for (const name of new Set(names))
      expect([...Object.keys(app.env), ...secrets]).toContain(name);
    const deploy = readFileSync('agent/autoscaler/fly.toml', 'utf8');
    for (const secret of secrets) expect(deploy).toContain(secret);
  });

  it('scales the agent app, by started Machines only (each keeps its volume), from the file Fly puts where the command reads it', () => {
    expect(config['app-name']).toBe(agent.app);
    expect(config['created-machine-count']).toBeUndefined();
    expect(app.files).toEqual([
      { guest_path: '/etc/fly-autoscaler.yml', local_path: 'agent/autoscaler/fly-autoscaler.yml' },
    ]);
    expect(app.experimental.cmd).toEqual(['serve', '-config', '/etc/fly-autoscaler.yml']);
    expect(Number(app.env.FLEET_CALLS_PER_MACHINE)).toBe(
      Number(agent.env.AGENT_MAX_CONCURRENT_CALLS),
    );
    expect(agent.mounts).toBeDefined();
  });

  it('its queries read the metrics the agents export, and only the agent app’s', () => {
    const exported = workerMetrics({ idleProcesses: 1 })
      .registry.getMetricsAsArray()
      .map((m) => m.name);
    for (const c of config['metric-collectors']) {
      expect(c.type).toBe('prometheus');
      for (const [, metric] of c.query.matchAll(/(voice_agent_\w+)\{/g))
        expect(exported).toContain(metric); // the whole name: `calls` is not `calls_running`
      expect(c.query).toContain(`app="${agent.app}"`);
      expect(c.query).toMatch(/or vector\(0\)$/); // never an empty result (fly-autoscaler errs on one)
    }
  });

  it('names only keys fly-autoscaler v0.3.2 knows (it decodes with KnownFields: any other fails its start)', () => {
    // The yaml tags of its Config and MetricCollectorConfig (cmd/fly-autoscaler/main.go, v0.3.2).
    const configKeys = [
      'app-name',
      'org',
      'regions',
      'process-group',
      'created-machine-count',
      'min-created-machine-count',
      'max-created-machine-count',
      'initial-machine-state',
      'started-machine-count',
      'min-started-machine-count',
      'max-started-machine-count',
      'concurrency',
      'interval',
      'timeout',
      'app-list-refresh-interval',
      'api-token',
      'verbose',
      'metric-collectors',
    ];
    const collectorKeys = [
      'type',
      'metric-name',
      'query',
      'address',
      'token',
      'namespace',
      'cert-data',
      'key-data',
    ];
    for (const key of Object.keys(config)) expect(configKeys).toContain(key);
    for (const c of config['metric-collectors'])
      for (const key of Object.keys(c)) expect(collectorKeys).toContain(key);
  });

  it.each([
    [0, 0, 2, 2],
    [8, 8, 2, 2],
    [19, 19, 3, 3],
    [25, 25, 3, 3],
    [5, 30, 2, 4],
    [500, 500, 10, 10],
  ])(
    'calls %i now (peak %i in the window): up to %i started Machines at once, down to no fewer than %i',
    (now, peak, up, down) => {
      const values = { calls_now: now, calls_peak: peak };
      expect(machineCount(config['min-started-machine-count'], values)).toBe(up);
      expect(machineCount(config['max-started-machine-count'], values)).toBe(down);
    },
  );
});
