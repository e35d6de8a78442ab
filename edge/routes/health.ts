import { Hono } from 'hono';
import type { AppEnv } from '../env.ts';

/** Liveness plus config validity: a misconfigured Worker answers 503 here (see loadConfig). */
export const healthRoutes = new Hono<AppEnv>().get('/', (c) => c.json({ ok: true }));
