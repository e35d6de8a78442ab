import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import type { AppEnv } from './env.ts';
import { notFound, onError } from './errors.ts';
import { corsFromAllowList } from './http/cors.ts';
import { accessLog, loadConfig } from './http/request-context.ts';
import { agentRoutes } from './routes/agent.ts';
import { callPageRoutes } from './routes/call-page.ts';
import { callRoutes } from './routes/calls.ts';
import { healthRoutes } from './routes/health.ts';
import { tokenRoutes } from './routes/token.ts';
import { webhookRoutes } from './routes/webhook.ts';

export const app = new Hono<AppEnv>()
  .use(requestId({ limitLength: 128 }))
  .use(accessLog)
  .route('/', callPageRoutes) // before secureHeaders: the page keeps its static _headers
  .use(secureHeaders())
  .use(corsFromAllowList) // before the config: its errors must reach allow-listed origins
  .use(loadConfig)
  .route('/healthz', healthRoutes)
  .route('/token', tokenRoutes)
  .route('/calls', callRoutes)
  .route('/calls', agentRoutes) // the agent's signed /calls/:room/admit and /report
  .route('/livekit', webhookRoutes);

app.onError(onError);
app.notFound(notFound);
