import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { freePort, startProcess, waitFor, type Proc } from './processes.ts';

/** Debian's redis-server, or undefined when it is not installed. */
export function redisServerPath(): string | undefined {
  try {
    return (
      execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() ||
      undefined
    );
  } catch {
    return undefined;
  }
}

export type Redis = { address: string; proc: Proc; stop(): Promise<void> };

/** A throwaway Redis on loopback, no persistence: what LiveKit nodes share to route rooms. */
export async function startRedis(bin: string, dir: string): Promise<Redis> {
  const port = await freePort();
  const proc = startProcess(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
    ],
    { logFile: join(dir, 'redis.log') },
  );
  await waitFor('redis-server', async () => {
    try {
      return execFileSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).includes(
        'PONG',
      );
    } catch {
      return false;
    }
  });
  return { address: `127.0.0.1:${port}`, proc, stop: () => proc.stop('SIGTERM') };
}
