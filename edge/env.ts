import type { Config } from './config.ts';

/** The Hono environment: bindings from `wrangler types`, plus what middleware puts on the context. */
export type AppEnv = {
  Bindings: Env;
  Variables: {
    requestId: string;
    config: Config;
    caller: Caller;
  };
};

/**
 * Who is calling. `admin`: operators (ADMIN_API_KEY). `app`: a trusted backend (APP_API_KEY).
 * `user`: an end user from the identity provider's JWT, or anonymous when enabled. `participant`:
 * someone holding a LiveKit token this edge minted, scoped to its room (`expired`: usable only
 * while that call is open).
 */
export type Caller =
  | { kind: 'admin' }
  | { kind: 'app' }
  | { kind: 'user'; identity: string; anonymous: boolean }
  | { kind: 'participant'; identity: string; room: string; expired: boolean };
