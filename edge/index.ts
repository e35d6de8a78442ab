import { app } from './app.ts';
import { runBackstop } from './call/backstop.ts';

// The Durable Object classes wrangler.toml binds.
export { Call } from './call/call-object.ts';

export default {
  fetch: app.fetch,
  async scheduled(_controller, env) {
    await runBackstop(env);
  },
} satisfies ExportedHandler<Env>;
