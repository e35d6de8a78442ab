import type { MiddlewareHandler } from 'hono';
import { configFrom } from '../config.ts';
import type { AppEnv } from '../env.ts';
import { log } from '../log.ts';

/** Parses config (fails as a named 503), and writes one access-log line per request. */
export const requestContext: MiddlewareHandler<AppEnv> = async (c, next) => {
  const started = Date.now();
  try {
    c.set('config', configFrom(c.env));
    await next();
  } finally {
    log(c, 'info', 'request', { method: c.req.method, path: new URL(c.req.url).pathname, status: c.res.status, ms: Date.now() - started });
  }
};
