import { app } from './app.ts';
import { runBackstop } from './call/backstop.ts';

export default {
  fetch: app.fetch,
  async scheduled(_controller, env) {
    await runBackstop(env);
  },
} satisfies ExportedHandler<Env>;
