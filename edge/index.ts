import { app } from './app.ts';
import { runBackstop } from './backstop.ts';

export default {
  fetch: app.fetch,
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(runBackstop(env));
  },
} satisfies ExportedHandler<Env>;
