import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { DEV_KEY, DEV_SECRET, resolveLiveKitServer } from '../support/livekit-server.ts';

/** Prints benchmark rows as a Markdown table (pasteable into docs/benchmarks.md), with machine and date. */
export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const os =
    process.platform === 'linux'
      ? `${process.arch}, ${navigator.hardwareConcurrency} cores`
      : process.platform;
  console.log(
    `\n### ${title}\n\n${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${os}\n`,
  );
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
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
