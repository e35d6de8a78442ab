import { SignJWT } from 'jose';
import { TokenVerifier } from 'livekit-server-sdk';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDispatchMetadata } from '../../wire-contract/index.ts';
import {
  APP,
  bearerFor,
  call,
  expectError,
  fakeLiveKit,
  callRow,
  seedCall,
  testEnv,
  userJwt,
  type ApiResponse,
  type TokenResponse,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());
const verify = (jwt: string) =>
  new TokenVerifier(testEnv.LIVEKIT_API_KEY, testEnv.LIVEKIT_API_SECRET).verify(jwt);
/** What the agent reads from the token's dispatch: the metadata opened as the agent opens it. */
async function agentMetadata(jwt: string) {
  const claims = await verify(jwt);
  const opened = await openDispatchMetadata(
    claims.roomConfig!.agents![0]!.metadata,
    claims.video!.room!,
    testEnv.LIVEKIT_API_SECRET,
  );
  if (!opened.ok) throw new Error(`dispatch metadata does not open: ${opened.problem}`);
  return opened.metadata;
}
// Anonymous callers are allowed only against a loopback LiveKit (or with the loud opt-in).
const ANONYMOUS = { AUTH_ALLOW_ANONYMOUS: 'true', LIVEKIT_URL: 'ws://127.0.0.1:7880' };

describe('POST /token (LiveKit standard token endpoint)', () => {
  it('mints a join-only token for the JWT subject in a fresh room, with the agent dispatch and a short TTL', async () => {
    const res = await call<TokenResponse>('/token', {
      headers: await bearerFor('alice'),
      json: { participant_name: 'Alice' },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.data.server_url).toBe(testEnv.LIVEKIT_URL);
    const claims = await verify(res.data.participant_token);
    expect(claims.sub).toBe('alice');
    expect(claims.name).toBe('Alice');
    expect(claims.video).toEqual({
      roomJoin: true,
      room: res.data.room_name,
      canPublish: true,
      canSubscribe: true,
      canPublishData: true,
    });
    expect(res.data.room_name).toMatch(/^call-[0-9a-f]{32}$/);
    const ttl = (claims as { exp: number; nbf: number }).exp - (claims as { nbf: number }).nbf;
    expect(ttl).toBe(600);
    const agents = claims.roomConfig!.agents!;
    expect(agents).toHaveLength(1);
    expect(agents[0]!.agentName).toBe('voice-agent');
    const metadata = await agentMetadata(res.data.participant_token);
    expect(metadata).toMatchObject({
      caller_identity: 'alice',
      end_mode: 'end_for_all',
      max_duration_seconds: 1800,
    });
    const row = await callRow(res.data.room_name);
    expect(row).toMatchObject({
      status: 'open',
      agent_name: 'voice-agent',
      end_mode: 'end_for_all',
    });
    expect(row!.deadline_at - row!.created_at).toBe((600 + 1800) * 1000);
  });

  it('gives every request its own unguessable room', async () => {
    const headers = await bearerFor('bob');
    const a = await call<TokenResponse>('/token', { headers, json: {} });
    const b = await call<TokenResponse>('/token', { headers, json: {} });
    expect(a.data.room_name).not.toBe(b.data.room_name);
  });

  it.each<[string, string, RequestInit & { json?: unknown }]>([
    ['an empty body', 'c1', { method: 'POST' }],
    ['the room_config {} that Swift always sends', 'c2', { json: { room_config: {} } }],
  ])('accepts %s', async (_name, sub, init) => {
    expect((await call('/token', { ...init, headers: await bearerFor(sub) })).status).toBe(201);
  });

  it('lets a client pick an allow-listed agent', async () => {
    const ok = await call<TokenResponse>('/token', {
      headers: await bearerFor('d'),
      json: { room_config: { agents: [{ agent_name: 'support-agent' }] } },
    });
    expect((await verify(ok.data.participant_token)).roomConfig!.agents![0]!.agentName).toBe(
      'support-agent',
    );
  });

  it('refuses an agent that is not allow-listed, naming the field', async () => {
    const bad = await call('/token', {
      headers: await bearerFor('d'),
      json: { room_config: { agents: [{ agent_name: 'root-agent' }] } },
    });
    expect(expectError(bad, 400, 'unknown_agent').message).toContain(
      'room_config.agents.0.agent_name',
    );
  });

  it.each([
    [{ room_name: 'my-room' }, 403, 'field_not_allowed', 'room_name'],
    [{ participant_identity: 'mallory' }, 403, 'field_not_allowed', 'participant_identity'],
    [
      { room_config: { agents: [{ agent_name: 'voice-agent', metadata: '{}' }] } },
      403,
      'field_not_allowed',
      'room_config.agents.0.metadata',
    ],
    [{ room_config: { egress: {} } }, 400, 'unsupported_field', 'room_config.egress'],
    [
      { room_config: { departure_timeout: 1 } },
      400,
      'unsupported_field',
      'room_config.departure_timeout',
    ],
    [{ can_publish: true }, 400, 'unsupported_field', 'can_publish'],
    [{ participant_attributes: { 'lk.agent.state': 'x' } }, 400, 'invalid_field', 'lk.agent.state'],
    [{ participant_name: 'x'.repeat(129) }, 400, 'invalid_field', 'participant_name'],
    [{ participant_metadata: 7 }, 400, 'invalid_field', 'participant_metadata'],
  ])('refuses %j from an end user, naming the field', async (json, status, code, field) => {
    const res = await call('/token', { headers: await bearerFor('eve'), json });
    expect(expectError(res, status, code).message).toContain(field);
  });

  it('lets an end user repeat their own identity', async () => {
    const res = await call<TokenResponse>('/token', {
      headers: await bearerFor('same'),
      json: { participant_identity: 'same' },
    });
    expect(res.status).toBe(201);
    expect(res.data.participant_identity).toBe('same');
    expect((await verify(res.data.participant_token)).sub).toBe('same');
  });

  it.each([
    ['no credential', undefined, 401, 'unauthenticated'],
    ['a wrong key', 'Bearer not-the-key-0123456789', 401, 'invalid_credential'],
    ['a Basic header', 'Basic YTpi', 401, 'invalid_credential'],
  ])('denies %s', async (_name, auth, status, code) => {
    const res = await call('/token', { headers: auth ? { Authorization: auth } : {}, json: {} });
    expectError(res, status, code);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it.each<[string, () => Promise<string>, string, string]>([
    [
      'an expired JWT',
      () => userJwt('u', {}, { expiresIn: Math.floor(Date.now() / 1000) - 60 }),
      'token_expired',
      'expired',
    ],
    [
      'a JWT for another audience',
      () => userJwt('u', { aud: 'other-app' }),
      'invalid_credential',
      'aud',
    ],
    [
      'a JWT from another issuer',
      () => userJwt('u', { iss: 'https://evil.example/' }),
      'invalid_credential',
      'iss',
    ],
    [
      'a JWT signed with another algorithm (HS256)',
      () =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject('u')
          .setIssuer(testEnv.AUTH_JWT_ISSUER)
          .setAudience(testEnv.AUTH_JWT_AUDIENCE)
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode('x'.repeat(32))),
      'invalid_credential',
      'algorithm',
    ],
  ])('denies %s with 401, saying why', async (_name, jwt, code, why) => {
    const res = await call('/token', {
      headers: { Authorization: `Bearer ${await jwt()}` },
      json: {},
    });
    expect(expectError(res, 401, code).message).toContain(why);
  });

  it('lets a trusted backend choose room, identity and per-call agent settings', async () => {
    const res = await call<TokenResponse>('/token', {
      headers: APP,
      json: {
        room_name: 'support-42',
        participant_identity: 'customer-42',
        room_config: {
          agents: [{ metadata: JSON.stringify({ end_mode: 'leave', max_duration_seconds: 60 }) }],
        },
      },
    });
    expect(res.status).toBe(201);
    const claims = await verify(res.data.participant_token);
    expect(claims.sub).toBe('customer-42');
    expect(claims.video?.room).toBe('support-42');
    expect(await agentMetadata(res.data.participant_token)).toMatchObject({
      end_mode: 'leave',
      max_duration_seconds: 60,
      caller_identity: 'customer-42',
    });
  });

  it("refuses a trusted backend's invalid agent settings, naming the field", async () => {
    const bad = await call('/token', {
      headers: APP,
      json: {
        participant_identity: 'x',
        room_config: { agents: [{ metadata: '{"end_mode":"explode"}' }] },
      },
    });
    expect(expectError(bad, 400, 'invalid_field').message).toContain('end_mode');
  });

  it('requires a participant identity from a trusted backend', async () => {
    const noIdentity = await call('/token', { headers: APP, json: {} });
    expect(expectError(noIdentity, 400, 'invalid_field').message).toContain('participant_identity');
  });

  it('refuses to reuse the name of a room whose call ended', async () => {
    await call('/token', { headers: APP, json: { room_name: 'once', participant_identity: 'p' } });
    await seedCall.ended('once');
    const again = await call('/token', {
      headers: APP,
      json: { room_name: 'once', participant_identity: 'p' },
    });
    expectError(again, 409, 'call_ended');
  });

  it.each<[string, (auth: HeadersInit) => RequestInit & { json?: unknown }, number, string]>([
    [
      'malformed JSON',
      (auth) => ({
        headers: { ...auth, 'content-type': 'application/json' },
        method: 'POST',
        body: '{"room_config": ',
      }),
      400,
      'malformed_json',
    ],
    [
      'a wrong content type',
      (auth) => ({
        headers: { ...auth, 'content-type': 'text/plain' },
        method: 'POST',
        body: '{}',
      }),
      415,
      'unsupported_media_type',
    ],
    [
      'an oversized body',
      (auth) => ({ headers: auth, json: { participant_metadata: 'x'.repeat(50_000) } }),
      413,
      'body_too_large',
    ],
  ])('answers %s with a named 4xx error', async (_name, request, status, code) => {
    const auth = await bearerFor('f');
    expectError(await call('/token', request(auth)), status, code);
  });

  describe('rate limits, at their boundaries', () => {
    type Burst = { statuses: number[]; last: ApiResponse<unknown> };
    // Workers' limiter counts in fixed windows aligned to the clock (60 s here). A burst that
    // straddles a rollover runs once more, with fresh keys, inside the new window (a burst takes
    // well under a second): the outcome never depends on when in the minute the test runs.
    async function inOneWindow(burst: (fresh: string) => Promise<Burst>): Promise<Burst> {
      for (let tries = 0; ; tries++) {
        const window = Math.floor(Date.now() / 60_000);
        const result = await burst(crypto.randomUUID().slice(0, 8));
        if (Math.floor(Date.now() / 60_000) === window || tries === 1) return result;
      }
    }
    async function send(n: number, request: (i: number) => Promise<ApiResponse<unknown>>) {
      const statuses: number[] = [];
      let last!: ApiResponse<unknown>;
      for (let i = 0; i < n; i++) {
        last = await request(i);
        statuses.push(last.status);
      }
      return { statuses, last };
    }
    const expect429 = (b: Burst, n: number, limit: number, what: string) => {
      expect(b.statuses).toEqual([...Array(limit).fill(201), ...Array(n - limit).fill(429)]);
      expect(expectError(b.last, 429, 'rate_limited').message).toContain(what);
      expect(b.last.headers.get('retry-after')).toBe('60');
      // Browser clients on TokenSource see only the body: the wait is repeated there.
      expect(
        (b.last.data as { error: { retry_after_seconds?: number } }).error.retry_after_seconds,
      ).toBe(60);
    };

    it('gives one identity 20 tokens a minute, from any address; the 21st gets 429 with Retry-After', async () => {
      const burst = await inOneWindow(async (fresh) => {
        const headers = await bearerFor(`greedy-${fresh}`);
        // The open-call cap would refuse the 4th: this is about the request rate alone.
        const noCap = { MAX_OPEN_CALLS_PER_CALLER: '0' };
        return send(21, () => call('/token', { headers, json: {} }, noCap));
      });
      expect429(burst, 21, 20, 'identity');
    });

    it('gives one address (CF-Connecting-IP) 60 tokens a minute across identities; another address is not affected', async () => {
      const burst = await inOneWindow(async (fresh) => {
        const ip = `192.0.2.${Math.floor(Math.random() * 250)}`;
        const result = await send(61, async (i) =>
          call('/token', {
            headers: { ...(await bearerFor(`ip-${fresh}-${i}`)), 'cf-connecting-ip': ip },
            json: {},
          }),
        );
        return result;
      });
      expect429(burst, 61, 60, 'address');
      const elsewhere = await call('/token', {
        headers: { ...(await bearerFor('elsewhere')), 'cf-connecting-ip': '198.51.100.7' },
        json: {},
      });
      expect(elsewhere.status).toBe(201);
    });

    it('limits anonymous callers per address', async () => {
      const burst = await inOneWindow(async (fresh) => {
        const ip = `203.0.113.${fresh.charCodeAt(0) % 250}`;
        return send(61, () =>
          call(
            '/token',
            { headers: { 'cf-connecting-ip': ip }, json: {} },
            { ...ANONYMOUS, MAX_OPEN_CALLS_PER_CALLER: '0' },
          ),
        );
      });
      expect429(burst, 61, 60, 'address');
    });

    it('never limits backend keys', async () => {
      const { statuses } = await send(70, (i) =>
        call('/token', {
          headers: { ...APP, 'cf-connecting-ip': '192.0.2.250' },
          json: { participant_identity: `backend-user-${i}` },
        }),
      );
      expect(statuses).toEqual(Array(70).fill(201));
    });
  });

  it('gives anonymous callers a random identity when enabled', async () => {
    const on = await call<TokenResponse>('/token', { json: {} }, ANONYMOUS);
    expect(on.status).toBe(201);
    expect(on.data.participant_identity).toMatch(/^anon-[0-9a-f]{24}$/);
  });

  it('denies anonymous callers when not enabled', async () => {
    expectError(await call('/token', { json: {} }), 401, 'unauthenticated');
  });

  it('verifies JWTs against a JWKS URL', async () => {
    const jwks = { keys: JSON.parse(testEnv.AUTH_JWKS_JSON!).keys };
    const spy = vi.spyOn(globalThis, 'fetch').mockImplementation(async () => Response.json(jwks));
    const ok = await call(
      '/token',
      { headers: await bearerFor('url-user'), json: {} },
      { AUTH_JWKS_JSON: undefined, AUTH_JWKS_URL: 'https://id.example.com/jwks-ok.json' },
    );
    expect(ok.status).toBe(201);
    expect(String(spy.mock.calls[0]?.[0])).toContain('jwks-ok.json');
  });

  it('answers 503 when the JWKS URL cannot be fetched', async () => {
    vi.spyOn(globalThis, 'fetch').mockImplementation(async () => {
      throw new TypeError('fetch failed');
    });
    const down = await call(
      '/token',
      { headers: await bearerFor('url-user'), json: {} },
      { AUTH_JWKS_JSON: undefined, AUTH_JWKS_URL: 'https://id.example.com/jwks-down.json' },
    );
    expectError(down, 503, 'identity_provider_unreachable');
  });

  it('names a missing variable instead of crashing', async () => {
    const res = await call(
      '/token',
      { headers: await bearerFor('g'), json: {} },
      { LIVEKIT_API_SECRET: undefined },
    );
    expect(expectError(res, 503, 'misconfigured').message).toContain('LIVEKIT_API_SECRET');
  });

  it('names a variable with a bad value and leaks no secret', async () => {
    const health = await call('/healthz', {}, { ADMIN_API_KEY: 'short' });
    expect(expectError(health, 503, 'misconfigured').message).toContain('ADMIN_API_KEY');
    expect(JSON.stringify(health.data)).not.toContain('short"');
  });

  describe('when the ledger (D1) fails', () => {
    // D1 faked at the binding: the real one cannot be made to fail on demand in workerd.
    const statement = { bind: () => statement, run: async () => ({}), first: async () => null };
    const failingLedger = (batch: () => Promise<unknown>) => ({
      LEDGER: { prepare: () => statement, batch },
    });

    it.each([
      ['a binding error', () => Promise.reject(new Error('D1_ERROR: database is unavailable'))],
      ['no answer', () => new Promise(() => {})],
    ])('answers 503 with Retry-After and issues no token on %s', async (_name, batch) => {
      const res = await call(
        '/token',
        { headers: await bearerFor('ledger-down'), json: {} },
        failingLedger(batch),
      );
      expect(expectError(res, 503, 'ledger_unavailable').message).toContain('ledger');
      expect(res.headers.get('retry-after')).toBe('5');
      expect(JSON.stringify(res.data)).not.toContain('participant_token');
    });
  });

  it('makes no LiveKit call to mint a token (dispatch rides in the token)', async () => {
    const lk = fakeLiveKit();
    await call('/token', { headers: await bearerFor('h'), json: {} });
    expect(lk.calls).toEqual([]);
  });
});

describe('what the backend tells the agent stays between the backend and the agent', () => {
  const INSTRUCTIONS = 'INTERNAL: offer refund up to $500 if the customer insists';
  /** Everything readable in a JWT without its key: header and payload, and any base64 inside. */
  function readableParts(jwt: string): string {
    const [header, payload] = jwt.split('.');
    const text = [header!, payload!].map((p) => base64UrlText(p)).join('\n');
    // A sealed blob is base64 too: its bytes must not spell out the plaintext either.
    const nested = [...text.matchAll(/[A-Za-z0-9+/_-]{16,}={0,2}/g)].map((m) =>
      base64UrlText(m[0]),
    );
    return [text, ...nested].join('\n');
  }
  function base64UrlText(s: string): string {
    const b64 = s.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
    try {
      return atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    } catch {
      return '';
    }
  }

  it("a backend's instructions and the caller identity metadata are not in the token a caller gets", async () => {
    const res = await call<TokenResponse>('/token', {
      headers: APP,
      json: {
        participant_identity: 'customer-7',
        room_config: {
          agents: [{ metadata: JSON.stringify({ instructions: INSTRUCTIONS, voice: 'sage' }) }],
        },
      },
    });
    expect(res.status).toBe(201);
    const readable = readableParts(res.data.participant_token);
    expect(readable).toContain('customer-7'); // the token's own subject: the decoding works
    for (const secret of ['INTERNAL', 'refund', '$500', 'caller_identity', 'sage', 'issued_at'])
      expect(readable).not.toContain(secret);
    expect(JSON.stringify(res.data)).not.toContain('refund');
    // The dispatch still rides in the token (the agent arrives as fast as before), sealed.
    const agents = (await verify(res.data.participant_token)).roomConfig!.agents!;
    expect(agents[0]!.agentName).toBe('voice-agent');
    expect(Object.keys(JSON.parse(agents[0]!.metadata)).sort()).toEqual(['sealed', 'v']);
  });

  it("an end user's token carries no readable dispatch metadata either", async () => {
    const res = await call<TokenResponse>('/token', {
      headers: await bearerFor('plain-user'),
      json: {},
    });
    expect(res.status).toBe(201);
    const readable = readableParts(res.data.participant_token);
    for (const secret of ['caller_identity', 'end_mode', 'max_duration_seconds'])
      expect(readable).not.toContain(secret);
  });
});

describe('cross-cutting', () => {
  it('echoes a request id and sets secure headers and CORS for an allow-listed origin', async () => {
    const res = await call('/healthz', {
      headers: { Origin: 'https://app.example.com', 'X-Request-Id': 'req-123' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('req-123');
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('sets no CORS header for another origin, and still a request id', async () => {
    const evil = await call('/healthz', { headers: { Origin: 'https://evil.example' } });
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    expect(evil.headers.get('x-request-id')).toBeTruthy();
  });

  it('answers a CORS preflight from an allow-listed origin', async () => {
    const preflight = await call('/token', {
      method: 'OPTIONS',
      headers: {
        Origin: 'https://app.example.com',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'authorization,content-type',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/authorization/i);
  });

  it('answers unknown routes with a JSON 404', async () => {
    expectError(await call('/nope'), 404, 'not_found');
  });
});
