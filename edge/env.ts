import type { Config } from './config.ts';
import type { Caller } from './middleware/caller.ts';

/** The Hono environment: bindings from `wrangler types`, plus what middleware puts on the context. */
export type AppEnv = {
  Bindings: Env;
  Variables: {
    requestId: string;
    config: Config;
    caller: Caller;
  };
};
