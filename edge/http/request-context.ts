import type { MiddlewareHandler } from 'hono';
import { checkedConfigFrom } from '../config.ts';
import type { AppEnv } from '../env.ts';
import { log } from '../log.ts';

/** One access-log line per request, after the error mapper has set the final status. */
export const accessLog: MiddlewareHandler<AppEnv> = async (c, next) => {
  const started = Date.now();
  await next();
  log(c, 'info', 'request', {
    method: c.req.method,
    path: new URL(c.req.url).pathname,
    status: c.res.status,
    ms: Date.now() - started,
  });
};

/** Parses config once per env; a bad or missing variable becomes a 503 naming it. */
export const loadConfig: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.set('config', await checkedConfigFrom(c.env));
  await next();
};
