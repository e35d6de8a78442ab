import type { Context } from 'hono';

type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * Where a line is logged from: a request (its config and id), or code outside one (a call's
 * object, the cron) with its config, or nothing known (then from `info` up).
 */
type Scope = Context | { LOG_LEVEL: Level } | undefined;

/** One JSON line per event, with the request id in a request; callers never pass secrets or tokens. */
export function log(
  c: Scope,
  level: Level,
  msg: string,
  fields: Record<string, unknown> = {},
): void {
  const request = c && 'get' in c ? c : undefined;
  const min: Level =
    (request
      ? request.get('config')?.LOG_LEVEL
      : (c as { LOG_LEVEL: Level } | undefined)?.LOG_LEVEL) ?? 'info';
  if (RANK[level] < RANK[min]) return;
  const line = JSON.stringify({
    level,
    msg,
    request_id: request?.get('requestId'),
    ...fields,
    time: new Date().toISOString(),
  });
  if (level === 'error') console.error(line);
  else if (level === 'warn') console.warn(line);
  else console.log(line);
}
