import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ConfigError } from './config.ts';
import { LiveKitFailure } from './livekit/call-livekit.ts';
import { log } from './log.ts';
import { errorMessage } from '../wire-contract/index.ts';

/** A failure with a stable code the client can switch on. Messages never carry secrets or tokens. */
export class ApiError extends Error {
  readonly status: ContentfulStatusCode;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(
    status: ContentfulStatusCode,
    code: string,
    message: string,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/**
 * The error body. A wait from Retry-After is repeated as `retry_after_seconds`: browser clients
 * using LiveKit's TokenSource see the body of a refused token request but not its headers.
 */
export function errorBody(code: string, message: string, headers: Record<string, string> = {}) {
  const retryAfter = Number(headers['Retry-After']);
  return { error: { code, message, ...(retryAfter > 0 && { retry_after_seconds: retryAfter }) } };
}

/** The command that creates the ledger's tables, named wherever their absence is reported. */
export const MIGRATE_COMMAND = 'npx wrangler d1 migrations apply LEDGER --local';

/**
 * Every way SQLite refuses a statement because the schema lacks what it names: a table, a column
 * (read, or written), an index (`INDEXED BY`), the unique index an upsert's `ON CONFLICT` needs.
 * A statement that needs nothing a missing migration adds runs as usual, so these are the failures
 * a partly migrated ledger gives, and no outage gives them.
 */
const SCHEMA_SHORTFALL =
  /\bno such (?:table|column|index): [\w.]+|\btable [\w.]+ has no column named \w+|\bON CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint/i;

/**
 * The ledger's schema falls short: no migration, or not the latest, was applied to this D1 database
 * (a fresh clone's `wrangler dev`, or a deploy before `migrations apply --remote`). Retrying cannot
 * help, so this names the command instead of blaming an unavailable ledger.
 */
export function ledgerNotMigrated(err: unknown): ApiError | undefined {
  const detail = SCHEMA_SHORTFALL.exec(errorMessage(err));
  if (!detail) return undefined;
  return new ApiError(
    503,
    'ledger_not_migrated',
    `the call ledger's database is not migrated, or not to the latest migration (${detail[0]}): run \`${MIGRATE_COMMAND}\` for wrangler dev, or with --remote for the deployed Worker`,
  );
}

/** For the ledger guard: rethrows a schema shortfall as `ledger_not_migrated`. */
export function throwIfLedgerNotMigrated(err: unknown): void {
  const notMigrated = ledgerNotMigrated(err);
  if (notMigrated) throw notMigrated;
}

// Problems this isolate has logged already (ConfigError.logOnceFor); a few, so bounded.
const loggedHere = new Set<string>();
function firstTimeHere(problem: string): boolean {
  if (loggedHere.has(problem)) return false;
  if (loggedHere.size >= 32) loggedHere.clear();
  loggedHere.add(problem);
  return true;
}

/** A request named an agent the allow-list (AGENT_ALLOWED_NAMES) does not have, in `field`. */
export function unknownAgent(field: string, agentName: string): ApiError {
  return new ApiError(400, 'unknown_agent', `${field}: unknown agent ${JSON.stringify(agentName)}`);
}

/** LiveKit's own error is a bad gateway; no answer in time, or none at all, is worth a retry. */
function liveKitError(err: LiveKitFailure): ApiError {
  if (err.kind === 'error') return new ApiError(502, 'livekit_error', err.message);
  return new ApiError(503, `livekit_${err.kind}`, err.message, { 'Retry-After': '5' });
}

/** The one error mapper: every thrown thing becomes `{ error: { code, message } }`. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof LiveKitFailure) return onError(liveKitError(err), c);
  if (err instanceof ApiError) {
    if (err.status >= 500)
      log(c, 'warn', 'request failed', { code: err.code, message: err.message });
    return c.json(errorBody(err.code, err.message, err.headers), err.status, err.headers);
  }
  if (err instanceof ConfigError) {
    if (err.logOnceFor === undefined || firstTimeHere(`${err.logOnceFor}\n${err.message}`))
      log(c, 'error', 'misconfigured', { message: err.message });
    return c.json(errorBody('misconfigured', err.message), 503);
  }
  if (err instanceof HTTPException) {
    // Hono's own middleware (body limit, CORS) throws these.
    const status = err.status;
    const code =
      status === 413 ? 'body_too_large' : status === 401 ? 'unauthenticated' : 'bad_request';
    return c.json(errorBody(code, err.message || 'bad request'), status);
  }
  const notMigrated = ledgerNotMigrated(err);
  if (notMigrated) return onError(notMigrated, c);
  log(c, 'error', 'unhandled error', {
    name: err?.name,
    message: String(err?.message ?? err).slice(0, 500),
  });
  return c.json(errorBody('internal', 'internal error'), 500);
}

export function notFound(c: Context): Response {
  return c.json(
    errorBody('not_found', `no route for ${c.req.method} ${new URL(c.req.url).pathname}`),
    404,
  );
}
