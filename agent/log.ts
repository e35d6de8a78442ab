import type { log } from '@livekit/agents';

/**
 * The one shape of the log callbacks the rooms take: level, message, then the line's fields. The
 * rooms never choose where lines go: a job's root hands them agents-js's logger (logTo), the
 * worker's root JSON lines on stderr, tests a collector. A leaf, like config.ts: rooms import it.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFn = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/**
 * The worker's own lines (outside agents-js's logger): one JSON object per line on stderr, the
 * level and message first, then the fields.
 */
export const logToStderr: LogFn = (level, msg, fields) =>
  console.error(JSON.stringify({ level, msg, ...fields }));

/** A LogFn that writes to agents-js's (pino) logger, so each line keeps the logger's bindings. */
export function logTo(logger: Pick<ReturnType<typeof log>, LogLevel>): LogFn {
  return (level, msg, fields) => logger[level](fields ?? {}, msg);
}
