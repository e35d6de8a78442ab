import { Hono } from 'hono';
import type { AppEnv } from '../env.ts';

/** Liveness plus config validity: a misconfigured Worker answers 503 here (see requestContext). */
export const healthRoutes = new Hono<AppEnv>().get('/healthz', (c) => c.json({ ok: true }));
