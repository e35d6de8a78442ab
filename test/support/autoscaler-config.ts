import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';

/** Where the fleet's fly-autoscaler config lives (agent/autoscaler/). */
export const AUTOSCALER_CONFIG = resolve(
  import.meta.dirname,
  '../../agent/autoscaler/fly-autoscaler.yml',
);

export type AutoscalerConfig = {
  'app-name': string;
  'min-started-machine-count': string;
  'max-started-machine-count': string;
  'metric-collectors': { type: string; 'metric-name': string; query: string; address: string }[];
  [key: string]: unknown;
};

/**
 * The config as fly-autoscaler reads it: every $VAR and ${VAR} expanded from `env` first, an
 * unset one to nothing (Go's os.ExpandEnv), then the YAML.
 */
export function readAutoscalerConfig(env: Record<string, string>): AutoscalerConfig {
  const text = readFileSync(AUTOSCALER_CONFIG, 'utf8').replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (_m, a: string | undefined, b: string | undefined) => env[(a ?? b)!] ?? '',
  );
  return parse(text) as AutoscalerConfig;
}

/**
 * A started-Machine expression of the config on the collected values, with the functions of
 * fly-autoscaler's expression language it uses (ceil, min, max), rounded as it rounds the result.
 */
export function machineCount(expression: string, values: Record<string, number>): number {
  const names = Object.keys(values);
  const fn = new Function('ceil', 'min', 'max', ...names, `return (${expression});`) as (
    ...args: unknown[]
  ) => number;
  return Math.round(fn(Math.ceil, Math.min, Math.max, ...names.map((n) => values[n])));
}
