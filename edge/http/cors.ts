import { cors } from 'hono/cors';
import type { Context } from 'hono';
import { corsAllowedOrigins } from '../config.ts';
import type { AppEnv } from '../env.ts';

/**
 * CORS from the allow-list only: no wildcard, since browsers send the user's credential. It reads
 * the list apart from the rest of the config and runs before it is parsed, so with a broken
 * config an allow-listed app's preflight passes and it reads the `503 misconfigured` that follows
 * (a body /healthz shows anyone), instead of a network error.
 */
export const corsFromAllowList = cors({
  origin: (origin, c) =>
    corsAllowedOrigins((c as Context<AppEnv>).env).includes(origin) ? origin : null,
  allowMethods: ['GET', 'POST', 'OPTIONS'],
  allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
  exposeHeaders: ['X-Request-Id', 'Retry-After'],
  maxAge: 600,
  credentials: true,
});
