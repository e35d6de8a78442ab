import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { toolCache } from './tool-cache.ts';

/** The Python client's folder: voice_call.py, its e2e driver and the pinned requirements. */
export const PYTHON_CLIENT_DIR = resolve(import.meta.dirname, '../clients/python');

/**
 * The venv scripts/python-client.sh makes, keyed by its requirements so a new pin gets a new venv:
 * <tool cache>/python-client/<first 12 hex of the requirements' sha256>/bin/python.
 */
export function pythonClientPath(): string | undefined {
  if (process.env.PYTHON_CLIENT_BIN) return process.env.PYTHON_CLIENT_BIN;
  const requirements = readFileSync(join(PYTHON_CLIENT_DIR, 'requirements.txt'));
  const key = createHash('sha256').update(requirements).digest('hex').slice(0, 12);
  const bin = toolCache('python-client', key, 'bin/python');
  return existsSync(bin) ? bin : undefined;
}

export const HOW_TO_GET_PYTHON_CLIENT =
  "LiveKit's Python SDK in its venv (bash scripts/python-client.sh; Debian: python3-venv)";

/** One scenario of e2e_call.py: the JSON lines it printed, by step. */
export function runPythonCall(
  scenario: 'end-for-everyone' | 'agent-ends' | 'agent-leaves' | 'forged-notice' | 'token',
  edgeUrl: string,
  credential?: string,
  // Below vitest's own 90 s, so a stuck client fails with what it printed.
  timeoutMs = 80_000,
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
        const failed = (why: string) =>
          fail(new Error(`e2e_call.py ${scenario}: ${why}\n${stdout}\n${stderr}`));
        if (err) return failed(err.message);
        const steps: Record<string, any> = {};
        try {
          for (const line of stdout.split('\n').filter(Boolean)) {
            const step = JSON.parse(line);
            steps[step.step] = step;
          }
        } catch {
          return failed('it printed a line that is not JSON');
        }
        done(steps);
      },
    );
  });
}
