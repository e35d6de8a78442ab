import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { DEV_KEY, DEV_SECRET, resolveLiveKitServer } from '../support/livekit-server.ts';

/**
 * Prints benchmark rows as a Markdown table (pasteable into docs/benchmarks.md), with machine and
 * date, and the load average when printed: on a shared host, other work moves these numbers.
 */
export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const os =
    process.platform === 'linux'
      ? `${process.arch}, ${navigator.hardwareConcurrency} cores (${cpus()[0]?.model})`
      : process.platform;
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
  console.log(
    `\n### ${title}\n\n${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${os}, load average ${load} (1, 5, 15 min) at the end\n`,
  );
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

let failedTotal = 0;

/**
 * The cell of a table's failed column, and the one rule for failures in every bench: a measured
 * request that failed (a refusal, an error, a timeout) means the row's numbers measure that failure
 * rather than the work, so the count is printed in the row and the run then exits non-zero (after
 * its tables). Once `bench:edge` printed 0 req/s for a row whose every request was refused, and
 * exited 0. `finding`: failures are what this row looks for (a capacity ramp past its limit); they
 * are shown but do not fail the run.
 */
export function failedCell(count: number, why: string[] = [], opts: { finding?: boolean } = {}) {
  if (count > 0 && !opts.finding) {
    if (failedTotal === 0)
      process.once('exit', () =>
        console.error(
          `\n${failedTotal} measured request(s) failed (the failed column): exit code 1`,
        ),
      );
    failedTotal += count;
    process.exitCode = 1;
  }
  return count > 0 && why.length ? `${count} (${why.join('; ')})` : String(count);
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** What every benchmarked agent worker gets: the local LiveKit server and the OpenAI stand-in. */
export function benchAgentEnv(livekitUrl: string, openaiUrl: string): Record<string, string> {
  return {
    LIVEKIT_URL: livekitUrl,
    LIVEKIT_API_KEY: DEV_KEY,
    LIVEKIT_API_SECRET: DEV_SECRET,
    OPENAI_API_KEY: 'sk-local',
    OPENAI_BASE_URL: openaiUrl,
    LOG_LEVEL: 'info',
  };
}

/** The real LiveKit server and a fresh agent build, or an exit that says what is missing. */
export function prepareLiveKitBench(name: string): string {
  const bin = resolveLiveKitServer();
  if (!bin) {
    console.error(`${name} needs the LiveKit server: install Go >= 1.26 or set LIVEKIT_SERVER_BIN`);
    process.exit(1);
  }
  execFileSync(process.execPath, ['agent/build.ts'], {
    cwd: resolve(import.meta.dirname, '../..'),
    stdio: 'pipe',
  });
  return bin;
}
