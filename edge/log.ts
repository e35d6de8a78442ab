import type { Context } from 'hono';

type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** One JSON line per event, always with the request id; callers never pass secrets or tokens. */
export function log(
  c: Context | undefined,
  level: Level,
  msg: string,
  fields: Record<string, unknown> = {},
): void {
  const min: Level = c?.get('config')?.LOG_LEVEL ?? 'info';
  if (RANK[level] < RANK[min]) return;
  const line = JSON.stringify({
    level,
    msg,
    request_id: c?.get('requestId'),
    ...fields,
    time: new Date().toISOString(),
  });
  if (level === 'error') console.error(line);
  else if (level === 'warn') console.warn(line);
  else console.log(line);
}
