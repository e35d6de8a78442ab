import { join, resolve } from 'node:path';
import { freePort, httpOk, startProcess, waitFor, type Proc } from './processes.ts';

const ROOT = resolve(import.meta.dirname, '../..');
export const AGENT_ENTRY = join(ROOT, 'dist/agent/main.js');

export type AgentWorker = {
  healthUrl: string;
  proc: Proc;
  activeJobs(): Promise<number>;
  stop(signal?: NodeJS.Signals): Promise<void>;
};

/**
 * The built agent (`node dist/agent/main.js start`), ready once its health endpoint says
 * registered. `command` runs another program as the worker instead (the bench's Python agent).
 */
export async function startAgentWorker(
  dir: string,
  env: Record<string, string>,
  name = 'agent',
  entry = AGENT_ENTRY,
  mode: 'start' | 'dev' = 'start',
  command: [string, ...string[]] = [process.execPath, entry, mode],
): Promise<AgentWorker> {
  const port = await freePort();
  const proc = startProcess(command[0], command.slice(1), {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: process.env.TMPDIR,
      AGENT_HEALTH_PORT: String(port),
      // No /metrics unless a test asks for it on a port of its own: workers side by side would
      // otherwise all reach for the default 9464 (the image check and bench:fleet scrape theirs).
      AGENT_METRICS_PORT: '0',
      AGENT_AUDIO_INPUT: 'false',
      LOG_LEVEL: 'debug',
      ...env,
    },
    logFile: join(dir, `${name}.log`),
  });
  const healthUrl = `http://127.0.0.1:${port}`;
  await waitFor(`${name} registered with LiveKit`, () => httpOk(healthUrl), {
    timeoutMs: 60_000,
    intervalMs: 200,
  });
  return {
    healthUrl,
    proc,
    async activeJobs() {
      const res = await fetch(`${healthUrl}/worker`);
      return ((await res.json()) as { active_jobs: number }).active_jobs;
    },
    stop: (signal) => proc.stop(signal),
  };
}
