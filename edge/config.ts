import * as z from 'zod';
import { END_MODES, type KeyPair } from '../wire-contract/index.ts';
import { inlineKeySetProblem, JWT_ALGORITHMS } from './identity-provider/keys.ts';

const csv = z.string().transform((s) =>
  s
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean),
);
const flag = z.enum(['true', 'false']).transform((v) => v === 'true');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const secret = z.string().min(16, 'must be at least 16 characters');

/** The exact words that let anonymous callers in outside development: no flag is copied by accident. */
export const ANONYMOUS_IN_PRODUCTION_ACK = 'i-know-anyone-can-call';

// Checked here, once, so a broken inline key set is a configuration error (/healthz says so)
// rather than a failure inside every request that carries a JWT.
const jwksJson = z.string().refine(
  (text) => {
    try {
      const set = JSON.parse(text) as { keys?: unknown };
      return (
        Array.isArray(set.keys) &&
        set.keys.length > 0 &&
        set.keys.every(
          (k) =>
            typeof k === 'object' && k !== null && typeof (k as { kty?: unknown }).kty === 'string',
        )
      );
    } catch {
      return false;
    }
  },
  { message: 'must be a JSON Web Key Set: {"keys":[{"kty":…},…]}' },
);

/**
 * One browser origin as the Origin header spells it: scheme://host[:port], lower case, nothing
 * after. An entry with a path or a trailing slash never matches one, and no wildcard is taken
 * (browsers send the user's credential), so such an entry is a configuration error.
 */
const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/;

/**
 * The CORS allow-list, read on its own: a configuration error anywhere else must still reach
 * the allow-listed origins as `503 misconfigured`. Only well-formed origins are kept (a malformed
 * entry also fails the whole config below), so a broken list allows no origin it does not name.
 */
export function corsAllowedOrigins(env: object): string[] {
  const list = (env as { CORS_ALLOWED_ORIGINS?: unknown }).CORS_ALLOWED_ORIGINS;
  return typeof list === 'string' ? csv.parse(list).filter((o) => ORIGIN.test(o)) : [];
}

/** Every variable the Worker reads, with its default. docs/configuration.md mirrors this. */
const ConfigSchema = z.object({
  LIVEKIT_URL: z.url({ protocol: /^(wss?|https?)$/ }),
  LIVEKIT_API_KEY: z.string().min(1),
  LIVEKIT_API_SECRET: z.string().min(1),
  // During a key rotation: the pair the edge held before, still accepted on what it verifies.
  LIVEKIT_PREVIOUS_API_KEY: z.string().min(1).optional(),
  LIVEKIT_PREVIOUS_API_SECRET: z.string().min(1).optional(),
  LIVEKIT_TIMEOUT_MS: int(100, 5000).default(5000),
  ADMIN_API_KEY: secret,
  APP_API_KEY: secret.optional(),
  AGENT_NAME: z.string().min(1).max(128),
  AGENT_ALLOWED_NAMES: csv.optional(),
  AGENT_END_MODE: z.enum(END_MODES).default('end_for_all'),
  TOKEN_TTL_SECONDS: int(10, 3600).default(600),
  MAX_CALL_DURATION_SECONDS: int(10, 24 * 3600).default(1800),
  BACKSTOP_GRACE_SECONDS: int(0, 3600).default(60),
  /**
   * How long a caller waits for the agent (re-dispatched with backoff) before the call ends as
   * agent_unavailable; 0 = the edge does not watch. At most 25: the call's object runs the watch
   * for a webhook's waitUntil, which lasts 30 s.
   */
  AGENT_WAIT_SECONDS: int(0, 25).default(20),
  CORS_ALLOWED_ORIGINS: csv
    .refine((list) => list.every((o) => ORIGIN.test(o)), {
      message:
        'each entry must be an origin as browsers send it: scheme://host[:port] in lower case, nothing after, no wildcard',
    })
    .default([]),
  AUTH_ALLOW_ANONYMOUS: flag.default(false),
  AUTH_ALLOW_ANONYMOUS_IN_PRODUCTION: z
    .literal(ANONYMOUS_IN_PRODUCTION_ACK, {
      error: `must be exactly ${ANONYMOUS_IN_PRODUCTION_ACK}, or unset`,
    })
    .optional(),
  MAX_OPEN_CALLS_PER_CALLER: int(0, 1000).default(3),
  AUTH_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  AUTH_JWKS_JSON: jwksJson.optional(),
  AUTH_JWT_ISSUER: z.string().min(1).optional(),
  AUTH_JWT_AUDIENCE: z.string().min(1).optional(),
  AUTH_JWT_ALGORITHMS: csv
    .refine((list) => list.length > 0, { message: 'must name at least one algorithm' })
    .superRefine((list, ctx) => {
      const unknown = list.filter((alg) => !Object.hasOwn(JWT_ALGORITHMS, alg));
      if (unknown.length > 0)
        ctx.addIssue({
          code: 'custom',
          message: `unknown algorithm ${unknown.join(', ')}; the edge verifies ${Object.keys(JWT_ALGORITHMS).join(', ')}`,
        });
    })
    .default(['RS256']),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  // Retention: the cron deletes older data in bounded batches (docs/configuration.md).
  RETENTION_CALL_DAYS: int(1, 3650).default(90),
  RETENTION_REPORT_DAYS: int(1, 3650).default(30),
  RETENTION_WEBHOOK_EVENT_DAYS: int(1, 3650).default(7),
});

export type Config = Omit<z.infer<typeof ConfigSchema>, 'AGENT_ALLOWED_NAMES'> & {
  AGENT_ALLOWED_NAMES: string[];
  /**
   * The LiveKit key pairs whose signatures the edge accepts (webhooks, agent reports and
   * admissions, participant tokens): the current pair, then the previous one during a rotation.
   * What the edge signs itself (tokens, server API calls) uses the current pair; the agent's
   * sealed metadata, during a rotation, the previous secret (edge/call/dispatch-settings.ts).
   */
  liveKitKeyPairs: readonly KeyPair[];
};

/** A missing or bad variable. The error mapper answers it as 503 `misconfigured`; the cron logs it. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  /**
   * Set: logged once per isolate for this (e.g. a key set) and message. For a problem found by
   * what a request carries (a JWT naming a broken key of a remote set), which anyone can repeat
   * without signing in.
   */
  readonly logOnceFor: string | undefined;
  constructor(message: string, { logOnceFor }: { logOnceFor?: string } = {}) {
    super(message);
    this.logOnceFor = logOnceFor;
  }
}

const cache = new WeakMap<object, Config>();

/**
 * Parses the Worker's env once per env object. A missing or bad variable throws a ConfigError
 * naming the variable (never its value), instead of a runtime ReferenceError later.
 */
export function configFrom(env: object): Config {
  const cached = cache.get(env);
  if (cached) return cached;
  // Empty strings (unset vars in some tooling) count as missing so defaults apply.
  const raw = Object.fromEntries(
    Object.entries(env).filter(([, v]) => typeof v === 'string' && v !== ''),
  );
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const names = [...new Set(parsed.error.issues.map((i) => String(i.path[0])))];
    throw new ConfigError(
      `server configuration is invalid: ${names.join(', ')} (${parsed.error.issues[0]?.message})`,
    );
  }
  const c = parsed.data;
  const jwtParts = [c.AUTH_JWKS_URL ?? c.AUTH_JWKS_JSON, c.AUTH_JWT_ISSUER, c.AUTH_JWT_AUDIENCE];
  if (jwtParts.some(Boolean) && !jwtParts.every(Boolean)) {
    throw new ConfigError(
      'server configuration is invalid: JWT auth needs AUTH_JWKS_URL or AUTH_JWKS_JSON, AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE together',
    );
  }
  const previous = [c.LIVEKIT_PREVIOUS_API_KEY, c.LIVEKIT_PREVIOUS_API_SECRET];
  if (previous.some(Boolean) && !previous.every(Boolean))
    throw new ConfigError(
      'server configuration is invalid: LIVEKIT_PREVIOUS_API_KEY and LIVEKIT_PREVIOUS_API_SECRET go together (both, or neither)',
    );
  if (c.LIVEKIT_PREVIOUS_API_KEY === c.LIVEKIT_API_KEY)
    throw new ConfigError(
      'server configuration is invalid: LIVEKIT_PREVIOUS_API_KEY is LIVEKIT_API_KEY; a rotation moves to a new key (LiveKit tells pairs apart by key)',
    );
  const development = isDevelopment(c.LIVEKIT_URL);
  // A dev config copied to a deployment must not ship calls anyone can start: anonymous callers
  // need development or the deployer's explicit, loud consent.
  if (c.AUTH_ALLOW_ANONYMOUS && !c.AUTH_ALLOW_ANONYMOUS_IN_PRODUCTION && !development) {
    throw new ConfigError(
      `server configuration is invalid: AUTH_ALLOW_ANONYMOUS=true lets anyone start calls; outside development (LiveKit not on loopback) it also needs AUTH_ALLOW_ANONYMOUS_IN_PRODUCTION=${ANONYMOUS_IN_PRODUCTION_ACK}`,
    );
  }
  // Keys fetched in the clear can be swapped on the way: whoever does so signs in as anyone.
  if (c.AUTH_JWKS_URL && new URL(c.AUTH_JWKS_URL).protocol !== 'https:' && !development)
    throw new ConfigError(
      'server configuration is invalid: AUTH_JWKS_URL must be https:// outside development (LiveKit not on loopback)',
    );
  const config: Config = {
    ...c,
    AGENT_ALLOWED_NAMES: c.AGENT_ALLOWED_NAMES ?? [c.AGENT_NAME],
    liveKitKeyPairs: [
      { apiKey: c.LIVEKIT_API_KEY, apiSecret: c.LIVEKIT_API_SECRET },
      ...(c.LIVEKIT_PREVIOUS_API_KEY && c.LIVEKIT_PREVIOUS_API_SECRET
        ? [{ apiKey: c.LIVEKIT_PREVIOUS_API_KEY, apiSecret: c.LIVEKIT_PREVIOUS_API_SECRET }]
        : []),
    ],
  };
  cache.set(env, config);
  return config;
}

/**
 * configFrom, plus the checks that need to await: each inline identity-provider key is imported
 * (once per key set), so a key no sign-in could ever be verified with is a configuration error
 * that /healthz reports, not a 401 for every user.
 */
export async function checkedConfigFrom(env: object): Promise<Config> {
  const config = configFrom(env);
  if (!config.AUTH_JWKS_JSON) return config;
  let problem = keysChecked.get(config);
  if (!problem) {
    problem = inlineKeySetProblem(config.AUTH_JWKS_JSON, config.AUTH_JWT_ALGORITHMS);
    keysChecked.set(config, problem);
  }
  const found = await problem;
  if (found) throw new ConfigError(`server configuration is invalid: AUTH_JWKS_JSON (${found})`);
  return config;
}

const keysChecked = new WeakMap<Config, Promise<string | undefined>>();

/**
 * The edge runs in development when its LiveKit is on loopback (`npm run dev`, the tests): the
 * one rule for what is allowed there only (anonymous callers, a plain-http key set).
 */
function isDevelopment(liveKitUrl: string): boolean {
  return isLoopbackHost(new URL(liveKitUrl).hostname);
}

/** 127.0.0.0/8, localhost and ::1, as a URL's hostname spells them. */
export function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  const octets = hostname.split('.');
  return (
    octets.length === 4 &&
    octets[0] === '127' &&
    octets.every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255)
  );
}
