import {
  createExecutionContext,
  env,
  runInDurableObject,
  waitOnExecutionContext,
} from 'cloudflare:test';
import { importJWK, SignJWT } from 'jose';
import { AccessToken } from 'livekit-server-sdk';
import { expect, vi } from 'vitest';
import type {
  AdmissionAnswer,
  AdmissionRequest,
  CallReport,
  EndedBy,
  EndReason,
} from '../../../wire-contract/index.ts';
import type { presentCall, presentCallToCaller } from '../../../edge/call/call-view.ts';
import worker from '../../../edge/index.ts';
import { localLedger } from '../../../edge/call/local-ledger.ts';
import { callReportFor } from '../call-report-fixture.ts';
import type { CallRow, EndSource } from '../../../edge/ledger/calls.ts';
import type { WebhookOutcome } from '../../../edge/ledger/webhook-events.ts';

export const testEnv = env as unknown as Env & {
  TEST_JWT_PRIVATE_JWK: string;
  AUTH_JWKS_JSON?: string;
  AUTH_JWKS_URL?: string;
  AUTH_JWT_ISSUER: string;
  AUTH_JWT_AUDIENCE: string;
};
export const ADMIN = { Authorization: `Bearer ${testEnv.ADMIN_API_KEY}` };
export const APP = { Authorization: `Bearer ${testEnv.APP_API_KEY}` };

/** Every error the edge answers: `{ error: { code, message } }`. */
export type ErrorBody = { error: { code: string; message: string } };
/** What `GET /calls/:room` answers the admin key, and the end-call endpoint nests under `call`. */
export type CallView = ReturnType<typeof presentCall>;
/** The same for every credential but the admin key: the caller view. */
export type CallerView = ReturnType<typeof presentCallToCaller>;
export type TokenResponse = {
  server_url: string;
  participant_token: string;
  room_name: string;
  participant_identity: string;
  participant_name: string | null;
};
export type EndCallResponse = {
  call: CallView;
  already_ended?: boolean;
  removed_agents?: string[];
};
export type DispatchResponse = {
  dispatch_id: string;
  created: boolean;
  room: string;
  agent_name: string;
};
export type CallList = { calls: CallView[]; next_cursor: string | null };
export type ReportResponse = { accepted: boolean; duplicate: boolean; call_id: string };
export type WebhookResponse = { outcome: WebhookOutcome };

/** A response from the Worker: `data` is the parsed JSON body (or the text when it is not JSON). */
export type ApiResponse<T = unknown> = { status: number; headers: Headers; data: T };

/**
 * Calls the Worker's real fetch handler, optionally with env overrides (config is parsed per env).
 * `T` is the body the test expects on success; errors are read with `expectError`.
 */
export async function call<T = unknown>(
  path: string,
  init: RequestInit & { json?: unknown } = {},
  overrides: Record<string, unknown> = {},
): Promise<ApiResponse<T>> {
  const headers = new Headers(init.headers);
  // Each request comes from its own address unless the test names one: the per-IP limit is tested
  // on purpose, never hit by accident.
  if (!headers.has('cf-connecting-ip')) headers.set('cf-connecting-ip', randomIp());
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(`https://edge.test${path}`, {
      method: init.method ?? (body ? 'POST' : 'GET'),
      headers,
      body,
    }),
    { ...testEnv, ...overrides } as Env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  const text = await res.text();
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    data = text;
  }
  return { status: res.status, headers: res.headers, data: data as T };
}

export function randomIp(): string {
  const b = crypto.getRandomValues(new Uint8Array(3));
  return `10.${b[0]}.${b[1]}.${b[2]}`;
}

/** Asserts an error answer (status and code together) and returns its `{ code, message }`. */
export function expectError(
  res: ApiResponse<unknown>,
  status: number,
  code: string,
): ErrorBody['error'] {
  const error = (res.data as Partial<ErrorBody> | null)?.error;
  expect({ status: res.status, code: error?.code }).toEqual({ status, code });
  expect(typeof error!.message).toBe('string');
  return error!;
}

export async function userJwt(
  sub: string,
  claims: Record<string, unknown> = {},
  { expiresIn = '5m' as string | number } = {},
) {
  const key = await importJWK(JSON.parse(testEnv.TEST_JWT_PRIVATE_JWK), 'RS256');
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
    .setSubject(sub)
    .setIssuer((claims.iss as string) ?? testEnv.AUTH_JWT_ISSUER)
    .setAudience((claims.aud as string) ?? testEnv.AUTH_JWT_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(key);
}

export async function bearerFor(sub: string) {
  return { Authorization: `Bearer ${await userJwt(sub)}` };
}

export async function issueToken(sub: string, json: unknown = {}): Promise<TokenResponse> {
  const res = await call<TokenResponse>('/token', { headers: await bearerFor(sub), json });
  if (res.status !== 201)
    throw new Error(`token failed: ${res.status} ${JSON.stringify(res.data)}`);
  return res.data;
}

/**
 * The room's metadata LiveKit takes from a participant token's room configuration when its join
 * creates the room (the call's facts, edge/call/call-facts.ts), as webhooks then carry it.
 */
export async function roomMetadataOf(participantToken: string): Promise<string> {
  const { TokenVerifier } = await import('livekit-server-sdk');
  const claims = await new TokenVerifier(
    testEnv.LIVEKIT_API_KEY,
    testEnv.LIVEKIT_API_SECRET,
  ).verify(participantToken);
  return claims.roomConfig?.metadata ?? '';
}

/** The Twirp request bodies the edge sends (protobuf JSON, camelCase), by method. */
type TwirpRequests = {
  DeleteRoom: { room: string };
  ListRooms: { names: string[] };
  ListParticipants: { room: string };
  RemoveParticipant: { room: string; identity: string };
  ListDispatch: { room: string };
  CreateDispatch: { room: string; agentName: string; metadata: string };
  DeleteDispatch: { dispatchId: string; room: string };
  SendData: { room: string; data: string; topic?: string };
};
type TwirpMethod = keyof TwirpRequests;
/** One recorded request, of whichever method: each field is there for the methods that send it. */
type TwirpCall = {
  method: string;
  body: {
    room?: string;
    names?: string[];
    identity?: string;
    agentName?: string;
    metadata?: string;
  };
};
/** What the fake answers: a response (also later), a network failure, or no answer at all. */
type Reply = Response | Promise<Response> | Error | 'hang';
type Replies = { [M in TwirpMethod]?: (body: TwirpRequests[M]) => Reply };

/**
 * LiveKit faked at the HTTP boundary (Twirp over fetch) for these in-workerd tests only; the e2e
 * suite runs the same paths against the real server. Responses are built inside the mock, in the
 * Worker's I/O context.
 */
export function fakeLiveKit(replies: Replies = {}) {
  const calls: TwirpCall[] = [];
  const spy = vi
    .spyOn(globalThis, 'fetch')
    .mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(input, init);
      const url = new URL(req.url);
      if (!url.pathname.startsWith('/twirp/')) throw new Error(`unexpected fetch ${req.url}`);
      const method = url.pathname.split('/').pop()!;
      const body = await req.json().catch(() => ({}));
      calls.push({ method, body: body as TwirpCall['body'] });
      const reply =
        (replies[method as TwirpMethod] as ((b: unknown) => Reply) | undefined)?.(body) ??
        Response.json({});
      if (reply === 'hang')
        return new Promise<Response>((_, reject) =>
          req.signal.addEventListener('abort', () => reject(req.signal.reason)),
        );
      if (reply instanceof Error) throw reply;
      return reply;
    });
  return {
    calls,
    methods: () => calls.map((c) => c.method),
    /** The bodies of every request for `method`, in order. */
    bodiesOf: <M extends TwirpMethod>(method: M) =>
      calls.filter((c) => c.method === method).map((c) => c.body as TwirpRequests[M]),
    restore: () => spy.mockRestore(),
  };
}

export const twirpError = (status: number, code: string, msg: string) =>
  Response.json({ code, msg }, { status });

export async function signAsLiveKit(
  body: string,
  { key = testEnv.LIVEKIT_API_KEY, secret = testEnv.LIVEKIT_API_SECRET, ttl = 300 } = {},
) {
  const { signBody } = await import('../../../wire-contract/index.ts');
  return signBody(body, key, secret, ttl);
}

/**
 * Posts a LiveKit webhook event (signed as LiveKit signs them, unless `sign` says otherwise), to
 * the Worker with `overrides` in its env, if any.
 */
export async function sendWebhook(
  event: Record<string, unknown>,
  sign = signAsLiveKit,
  overrides: Record<string, unknown> = {},
) {
  const body = JSON.stringify({ createdAt: String(Math.floor(Date.now() / 1000)), ...event });
  return call<WebhookResponse>(
    '/livekit/webhook',
    {
      method: 'POST',
      headers: { 'content-type': 'application/webhook+json', Authorization: await sign(body) },
      body,
    },
    overrides,
  );
}

/** An agent job asks the edge, signed as the agent signs it, to admit it (POST /calls/:room/admit). */
export async function askAdmission(
  room: string,
  ask: Partial<AdmissionRequest> = {},
  { sign = true, overrides = {} as Record<string, unknown> } = {},
) {
  const body = JSON.stringify({ room, room_sid: 'RM_own', job_id: 'AJ_1', ...ask });
  return call<AdmissionAnswer>(
    `/calls/${room}/admit`,
    {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(sign && { Authorization: await signAsLiveKit(body) }),
      },
      body,
    },
    overrides,
  );
}

/** A LiveKit token signed with the edge's key; a negative `ttl` makes one that expired that long ago. */
export async function liveKitTokenFor(identity: string, room: string, ttl = 600) {
  const at = new AccessToken(testEnv.LIVEKIT_API_KEY, testEnv.LIVEKIT_API_SECRET, {
    identity,
    ttl,
  });
  at.addGrant({ roomJoin: true, room });
  return at.toJwt();
}

/** The call's object, by room name. */
export const callObjectOf = (room: string) => testEnv.CALLS.get(testEnv.CALLS.idFromName(room));

/**
 * A CALLS binding whose objects fail every request, as an overloaded or unreachable one does;
 * `except` names methods passed through to the real objects.
 */
export function failingObjects(except: string[] = []): Env['CALLS'] {
  return {
    idFromName: (name: string) => testEnv.CALLS.idFromName(name),
    get: (id: DurableObjectId) =>
      new Proxy(
        {},
        {
          get: (_t, method) =>
            method === 'then'
              ? undefined // a stub is not a promise
              : except.includes(String(method))
                ? (...args: unknown[]) =>
                    (
                      testEnv.CALLS.get(id) as unknown as Record<
                        string,
                        (...a: unknown[]) => unknown
                      >
                    )[String(method)]!(...args)
                : () => Promise.reject(new Error('Durable Object is overloaded')),
        },
      ),
  } as unknown as Env['CALLS'];
}
export const UNREACHABLE_OBJECTS = failingObjects();

/**
 * Gives the call's object `ledger` as its archive (D1) until the returned function is called: a
 * test's way to make D1 fail (or hang) where the object reaches it.
 */
export async function objectArchive(
  room: string,
  ledger: D1Database,
): Promise<() => Promise<void>> {
  const object = callObjectOf(room);
  let original: Env | undefined;
  await runInDurableObject(object, (instance) => {
    const o = instance as unknown as { env: Env };
    original = o.env;
    o.env = { ...o.env, LEDGER: ledger };
  });
  return () =>
    runInDurableObject(object, (instance) => {
      (instance as unknown as { env: Env }).env = original!;
    });
}

/** The call's row as the edge holds it live: its object's (edge/call/call-object.ts). */
export async function callRow(room: string): Promise<CallRow | null> {
  return callObjectOf(room).row(room);
}

/** The call's row in the archive (D1), which the lists, the cap and the cron read. */
export async function archiveRow(room: string): Promise<CallRow | null> {
  return testEnv.LEDGER.prepare('SELECT * FROM calls WHERE room = ?').bind(room).first<CallRow>();
}

/**
 * The call's own ledger (its object's SQLite, as the object's code sees it), for a test that
 * drives the ledger's functions directly: each statement runs inside the object.
 */
export function callLedger(room: string): D1Database {
  const object = callObjectOf(room);
  const inObject = <T>(fn: (db: D1Database) => Promise<T>) =>
    object
      .row(room)
      .then(() => runInDurableObject(object, (_o, state) => fn(localLedger(state.storage))));
  type Stmt = { query: string; params: unknown[] };
  const statement = (query: string, params: unknown[] = []) => ({
    query,
    params,
    bind: (...values: unknown[]) => statement(query, values),
    first: () =>
      inObject((db) =>
        db
          .prepare(query)
          .bind(...params)
          .first(),
      ),
    run: () =>
      inObject((db) =>
        db
          .prepare(query)
          .bind(...params)
          .run(),
      ),
    all: () =>
      inObject((db) =>
        db
          .prepare(query)
          .bind(...params)
          .all(),
      ),
  });
  return {
    prepare: (query: string) => statement(query),
    batch: (statements: Stmt[]) =>
      inObject((db) => db.batch(statements.map((st) => db.prepare(st.query).bind(...st.params)))),
  } as unknown as D1Database;
}

/**
 * Runs a statement on the call's rows in both its stores, the object's and the archive, so a
 * test puts a call into a state no request reaches quickly and both agree on it.
 */
export async function atCall(room: string, sql: string, ...params: unknown[]): Promise<void> {
  // The object first, taking the call from the archive as it stood: as in life, the archive
  // learns what the object knows only later.
  const object = callObjectOf(room);
  await object.row(room);
  await runInDurableObject(object, (_o, state) => {
    state.storage.sql.exec(sql, ...params);
  });
  await atArchive(sql, ...params);
}

/** Runs a statement on the archive (D1) only: a call no object has heard of yet. */
export async function atArchive(sql: string, ...params: unknown[]): Promise<void> {
  await testEnv.LEDGER.prepare(sql)
    .bind(...params)
    .run();
}

/**
 * Puts calls the edge opened into states a test needs and no request reaches quickly. The SQL for
 * each state lives here once; tests name the state.
 */
export const seedCall = {
  /** The call ended earlier (by default from the webhook, inferred, at `at`). */
  async ended(
    room: string,
    {
      reason = 'participant_left',
      endedBy = null,
      source = 'webhook',
      strength = 0,
      at = Date.now(),
    }: {
      reason?: EndReason;
      endedBy?: EndedBy | null;
      source?: EndSource;
      strength?: 0 | 1;
      at?: number;
    } = {},
  ): Promise<void> {
    await atCall(
      room,
      `UPDATE calls SET status = 'ended', end_reason = ?2, ended_by = ?3, end_source = ?4,
         end_strength = ?5, ended_at = ?6 WHERE room = ?1`,
      room,
      reason,
      endedBy,
      source,
      strength,
      at,
    );
  },
  /**
   * The call's last token expired at `joinBy` (epoch ms) and its room never started; with
   * `archiveOnly`, as a token no one used leaves it: in the archive, its object never asked.
   */
  async unused(room: string, joinBy: number, { archiveOnly = false } = {}): Promise<void> {
    if (archiveOnly) {
      await atArchive(
        'UPDATE calls SET join_by = ?2, started_at = NULL WHERE room = ?1',
        room,
        joinBy,
      );
      return;
    }
    await atCall(
      room,
      'UPDATE calls SET join_by = ?2, started_at = NULL WHERE room = ?1',
      room,
      joinBy,
    );
  },
  /** A request claimed the dispatch at `at` (epoch ms) and died before dispatching. */
  async abandonedDispatchClaim(room: string, at: number): Promise<void> {
    await atCall(
      room,
      'UPDATE calls SET dispatch_id = ?2 WHERE room = ?1',
      room,
      `pending:${at}:dead-request`,
    );
  },
  /** The call was live (its room started a minute before) and its deadline is `deadlineAt`. */
  async live(room: string, deadlineAt: number): Promise<void> {
    await atCall(
      room,
      'UPDATE calls SET started_at = ?2, deadline_at = ?3 WHERE room = ?1',
      room,
      deadlineAt - 60_000,
      deadlineAt,
    );
  },
  /** The call's deadline passed at `deadlineAt` (epoch ms); the backstop owes it an end. */
  async overdue(room: string, deadlineAt: number): Promise<void> {
    await atCall(room, 'UPDATE calls SET deadline_at = ?2 WHERE room = ?1', room, deadlineAt);
  },
};

/**
 * Posts the agent's end-of-call report for `room`, signed as the agent signs it (a full, valid
 * report; `overrides` change any field). Answers the Worker's response.
 */
export async function postAgentReport(
  room: string,
  overrides: Partial<CallReport> = {},
): Promise<ApiResponse<ReportResponse>> {
  const body = JSON.stringify(callReportFor(room, overrides));
  return call<ReportResponse>(`/calls/${room}/report`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', Authorization: await signAsLiveKit(body) },
    body,
  });
}
