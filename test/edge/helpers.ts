import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { importJWK, SignJWT } from 'jose';
import { AccessToken } from 'livekit-server-sdk';
import { vi } from 'vitest';
import worker from '../../edge/index.ts';

export const testEnv = env as unknown as Env & {
  TEST_JWT_PRIVATE_JWK: string;
  AUTH_JWKS_JSON?: string;
  AUTH_JWKS_URL?: string;
  AUTH_JWT_ISSUER: string;
  AUTH_JWT_AUDIENCE: string;
};
export const ADMIN = { Authorization: `Bearer ${testEnv.ADMIN_API_KEY}` };
export const APP = { Authorization: `Bearer ${testEnv.APP_API_KEY}` };

/** Calls the Worker's real fetch handler, optionally with env overrides (config is parsed per env). */
export async function call(
  path: string,
  init: RequestInit & { json?: unknown } = {},
  overrides: Record<string, string | undefined> = {},
) {
  const headers = new Headers(init.headers);
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
  let data: any;
  try {
    data = JSON.parse(text);
  } catch {
    data = text;
  }
  return { status: res.status, headers: res.headers, data };
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

export async function issueToken(sub: string, json: unknown = {}) {
  const res = await call('/token', { headers: await bearerFor(sub), json });
  if (res.status !== 201)
    throw new Error(`token failed: ${res.status} ${JSON.stringify(res.data)}`);
  return res.data as {
    server_url: string;
    participant_token: string;
    room_name: string;
    participant_identity: string;
  };
}

type TwirpCall = { method: string; body: any };
type Reply = Response | Error | 'hang';

/**
 * LiveKit faked at the HTTP boundary (Twirp over fetch) for these in-workerd tests only; the e2e
 * suite runs the same paths against the real server. Responses are built inside the mock, in the
 * Worker's I/O context.
 */
export function fakeLiveKit(replies: Record<string, (body: any) => Reply> = {}) {
  const calls: TwirpCall[] = [];
  const spy = vi
    .spyOn(globalThis, 'fetch')
    .mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(input, init);
      const url = new URL(req.url);
      if (!url.pathname.startsWith('/twirp/')) throw new Error(`unexpected fetch ${req.url}`);
      const method = url.pathname.split('/').pop()!;
      const body = await req.json().catch(() => ({}));
      calls.push({ method, body });
      const reply = replies[method]?.(body) ?? Response.json({});
      if (reply === 'hang')
        return new Promise<Response>((_, reject) =>
          req.signal.addEventListener('abort', () => reject(req.signal.reason)),
        );
      if (reply instanceof Error) throw reply;
      return reply;
    });
  return { calls, methods: () => calls.map((c) => c.method), restore: () => spy.mockRestore() };
}

export const twirpError = (status: number, code: string, msg: string) =>
  Response.json({ code, msg }, { status });

export async function signAsLiveKit(
  body: string,
  { key = testEnv.LIVEKIT_API_KEY, secret = testEnv.LIVEKIT_API_SECRET, ttl = 300 } = {},
) {
  const { signBody } = await import('../../wire-contract/index.ts');
  return signBody(body, key, secret, ttl);
}

export async function liveKitTokenFor(identity: string, room: string) {
  const at = new AccessToken(testEnv.LIVEKIT_API_KEY, testEnv.LIVEKIT_API_SECRET, {
    identity,
    ttl: 600,
  });
  at.addGrant({ roomJoin: true, room });
  return at.toJwt();
}

export async function ledgerRow(room: string) {
  return testEnv.LEDGER.prepare('SELECT * FROM calls WHERE room = ?')
    .bind(room)
    .first<Record<string, any>>();
}
