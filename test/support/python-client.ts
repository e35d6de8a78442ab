import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The Python client's folder: voice_call.py, its e2e driver and the pinned requirements. */
export const PYTHON_CLIENT_DIR = resolve(import.meta.dirname, '../clients/python');

/**
 * The venv scripts/python-client.sh makes, keyed by the pinned `livekit` version so a new pin gets
 * a new venv: ~/.cache/livekit-voice-calls/python-client/livekit-<version>/bin/python.
 */
export function pythonClientPath(): string | undefined {
  if (process.env.PYTHON_CLIENT_BIN) return process.env.PYTHON_CLIENT_BIN;
  const pin = /^livekit==(\S+)$/m.exec(
    readFileSync(join(PYTHON_CLIENT_DIR, 'requirements.txt'), 'utf8'),
  )?.[1];
  const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  const bin = join(cache, 'livekit-voice-calls/python-client', `livekit-${pin}`, 'bin/python');
  return existsSync(bin) ? bin : undefined;
}

export const HOW_TO_GET_PYTHON_CLIENT =
  "LiveKit's Python SDK in its venv (bash scripts/python-client.sh; Debian: python3-venv)";

/** One scenario of e2e_call.py: the JSON lines it printed, by step. */
export function runPythonCall(
  scenario: 'end-for-everyone' | 'agent-ends' | 'token',
  edgeUrl: string,
  credential?: string,
  timeoutMs = 90_000,
): Promise<Record<string, any>> {
  const python = pythonClientPath();
  if (!python) throw new Error(`no Python client: ${HOW_TO_GET_PYTHON_CLIENT}`);
  const args = ['e2e_call.py', scenario, edgeUrl, ...(credential ? [credential] : [])];
  return new Promise((done, fail) => {
    execFile(
      python,
      args,
      { cwd: PYTHON_CLIENT_DIR, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const steps: Record<string, any> = {};
        for (const line of stdout.split('\n').filter(Boolean)) {
          const step = JSON.parse(line);
          steps[step.step] = step;
        }
        if (err) fail(new Error(`e2e_call.py ${scenario}: ${err.message}\n${stdout}\n${stderr}`));
        else done(steps);
      },
    );
  });
}
