import { cors } from 'hono/cors';
import type { Context } from 'hono';
import type { AppEnv } from '../env.ts';

/** CORS from the allow-list only: no wildcard, since browsers send the user's credential. */
export const corsFromAllowList = cors({
  origin: (origin, c) =>
    (c as Context<AppEnv>).get('config').CORS_ALLOWED_ORIGINS.includes(origin) ? origin : null,
  allowMethods: ['GET', 'POST', 'OPTIONS'],
  allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
  exposeHeaders: ['X-Request-Id', 'Retry-After'],
  maxAge: 600,
  credentials: true,
});
