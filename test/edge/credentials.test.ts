import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  APP,
  bearerFor,
  call,
  expectError,
  testEnv,
  type CallView,
  type TokenResponse,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

describe('credentials that fail for the wrong reason', () => {
  it('takes a participant token of the largest size /token issues as the credential for its call', async () => {
    const attributes = Object.fromEntries(
      Array.from({ length: 16 }, (_, i) => [`attr-${i}-`.padEnd(128, 'k'), 'v'.repeat(1024)]),
    );
    const issued = await call<TokenResponse>('/token', {
      headers: APP,
      json: {
        participant_identity: 'p'.repeat(128),
        participant_name: 'n'.repeat(128),
        participant_metadata: 'm'.repeat(4096),
        participant_attributes: attributes,
        room_config: {
          agents: [{ metadata: JSON.stringify({ instructions: 'i'.repeat(8000) }) }],
        },
      },
    });
    expect(issued.status).toBe(201);
    const token = issued.data.participant_token;
    expect(token.length).toBeGreaterThan(8192);
    const read = await call<CallView>(`/calls/${issued.data.room_name}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(read.status).toBe(200);
    expect(read.data.room).toBe(issued.data.room_name);
  });

  it('refuses, naming the fields, to issue a token too long to be taken back as a credential', async () => {
    // Three UTF-8 bytes per character, and the sealed agent metadata grows by base64 twice: the
    // body fits its limit while the token would not.
    const attributes = Object.fromEntries(
      Array.from({ length: 7 }, (_, i) => [`a${i}`, '€'.repeat(1024)]),
    );
    const res = await call('/token', {
      headers: APP,
      json: {
        participant_identity: 'wide',
        participant_attributes: attributes,
        room_config: { agents: [{ metadata: JSON.stringify({ instructions: '€'.repeat(8000) }) }] },
      },
    });
    const { message } = expectError(res, 400, 'invalid_field');
    expect(message).toContain('participant_attributes');
    expect(message).toContain('65536');
  });

  it('still refuses an absurdly long bearer credential as invalid', async () => {
    const res = await call('/calls/some-room', {
      headers: { Authorization: `Bearer ${'x'.repeat(200_000)}` },
    });
    expectError(res, 401, 'invalid_credential');
  });

  describe("when the identity provider's key set cannot be had", () => {
    const viaUrl = (name: string) => ({
      AUTH_JWKS_JSON: undefined,
      AUTH_JWKS_URL: `https://id.example.com/${name}-${crypto.randomUUID()}.json`,
    });

    it.each<[string, () => Response]>([
      ['answers 503', () => new Response('upstream down', { status: 503 })],
      ['answers 404', () => new Response('not here', { status: 404 })],
      ['redirects', () => new Response(null, { status: 302, headers: { location: '/x' } })],
      ['answers 200 with something that is not JSON', () => new Response('<html>')],
    ])(
      'answers 503 identity_provider_unreachable with Retry-After when it %s, not an expired sign-in',
      async (_name, reply) => {
        vi.spyOn(globalThis, 'fetch').mockImplementation(async () => reply());
        const res = await call(
          '/token',
          { headers: await bearerFor('idp-down'), json: {} },
          viaUrl('jwks'),
        );
        expectError(res, 503, 'identity_provider_unreachable');
        expect(res.headers.get('retry-after')).toBe('5');
        expect(res.headers.get('www-authenticate')).toBeNull();
      },
    );

    it('answers 503 when the key set does not answer in time', async () => {
      vi.spyOn(globalThis, 'fetch').mockImplementation(
        (_input, init) =>
          new Promise((_, reject) =>
            init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)),
          ),
      );
      const res = await call(
        '/token',
        { headers: await bearerFor('idp-slow'), json: {} },
        viaUrl('slow'),
      );
      expectError(res, 503, 'identity_provider_unreachable');
    });

    it('still answers 401 for a bad JWT when the key set is there', async () => {
      const jwks = { keys: JSON.parse(testEnv.AUTH_JWKS_JSON!).keys };
      vi.spyOn(globalThis, 'fetch').mockImplementation(async () => Response.json(jwks));
      const forged = (await bearerFor('forged')).Authorization.slice(0, -4) + 'AAAA';
      const res = await call(
        '/token',
        { headers: { Authorization: forged }, json: {} },
        viaUrl('ok'),
      );
      expectError(res, 401, 'invalid_credential');
    });
  });

  it.each([
    ['not JSON', '{"keys": ['],
    ['JSON without a keys array', '{"keys": "none"}'],
    ['a key that is not an object', '{"keys": [42]}'],
    ['a key without kty', '{"keys": [{"kid": "a"}]}'],
  ])(
    'calls an AUTH_JWKS_JSON that is %s a configuration error at start (/healthz says so), not a 500 per request',
    async (_name, json) => {
      const health = await call('/healthz', {}, { AUTH_JWKS_JSON: json });
      expect(expectError(health, 503, 'misconfigured').message).toContain('AUTH_JWKS_JSON');
      const token = await call(
        '/token',
        { headers: await bearerFor('jwks-broken'), json: {} },
        { AUTH_JWKS_JSON: json },
      );
      expectError(token, 503, 'misconfigured');
    },
  );

  it.each(['.', '..'])('refuses the room name %j, which a URL path cannot carry', async (name) => {
    const res = await call('/token', {
      headers: APP,
      json: { room_name: name, participant_identity: 'dots' },
    });
    expect(expectError(res, 400, 'invalid_field').message).toContain('room_name');
  });

  it('accepts room names with dots that a URL path carries as they are', async () => {
    const res = await call<TokenResponse>('/token', {
      headers: APP,
      json: { room_name: `...v1.2-${crypto.randomUUID()}`, participant_identity: 'dots' },
    });
    expect(res.status).toBe(201);
  });
});

describe('anonymous callers outside development', () => {
  const ACK = 'i-know-anyone-can-call';

  it.each([
    'http://livekit.test:7880',
    'wss://project.livekit.cloud',
    'ws://127.0.0.1.example.com',
    'ws://localhost.example.com:7880',
  ])(
    'refuses to start with AUTH_ALLOW_ANONYMOUS=true and LiveKit at %s, naming both settings',
    async (url) => {
      const res = await call('/healthz', {}, { AUTH_ALLOW_ANONYMOUS: 'true', LIVEKIT_URL: url });
      const { message } = expectError(res, 503, 'misconfigured');
      expect(message).toContain('AUTH_ALLOW_ANONYMOUS');
      expect(message).toContain('AUTH_ALLOW_ANONYMOUS_IN_PRODUCTION');
    },
  );

  it.each([
    'ws://127.0.0.1:7880',
    'ws://127.3.2.1:7880',
    'ws://localhost:7880',
    'http://[::1]:7880',
  ])('allows them against a loopback LiveKit (%s)', async (url) => {
    const res = await call<TokenResponse>(
      '/token',
      { json: {} },
      { AUTH_ALLOW_ANONYMOUS: 'true', LIVEKIT_URL: url },
    );
    expect(res.status).toBe(201);
    expect(res.data.participant_identity).toMatch(/^anon-/);
  });

  it(`allows them anywhere with AUTH_ALLOW_ANONYMOUS_IN_PRODUCTION=${ACK}, and only that value`, async () => {
    const on = { AUTH_ALLOW_ANONYMOUS: 'true', LIVEKIT_URL: 'wss://project.livekit.cloud' };
    const ok = await call(
      '/token',
      { json: {} },
      { ...on, AUTH_ALLOW_ANONYMOUS_IN_PRODUCTION: ACK },
    );
    expect(ok.status).toBe(201);
    const wrong = await call('/healthz', {}, { ...on, AUTH_ALLOW_ANONYMOUS_IN_PRODUCTION: 'true' });
    expect(expectError(wrong, 503, 'misconfigured').message).toContain(
      'AUTH_ALLOW_ANONYMOUS_IN_PRODUCTION',
    );
  });
});
