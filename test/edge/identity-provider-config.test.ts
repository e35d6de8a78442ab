import { exportJWK, generateKeyPair } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  bearerFor,
  call,
  expectError,
  testEnv,
  type TokenResponse,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

/** The test identity provider's public key, as the edge's bindings hold it. */
const goodKey = () => JSON.parse(testEnv.AUTH_JWKS_JSON!).keys[0] as Record<string, unknown>;

/**
 * A broken identity-provider configuration must be found by the edge, not by every user: /healthz
 * answers 503 misconfigured naming the variable, and a valid sign-in answers the same instead of a
 * 401 that tells the user to sign in again.
 */
async function expectMisconfigured(overrides: Record<string, unknown>, variable: string) {
  const health = await call('/healthz', {}, overrides);
  const { message } = expectError(health, 503, 'misconfigured');
  expect(message).toContain(variable);
  const signIn = await call(
    '/token',
    { headers: await bearerFor('idp-config'), json: {} },
    overrides,
  );
  expect(expectError(signIn, 503, 'misconfigured').message).toBe(message);
  return message;
}

describe('an identity-provider configuration that can never verify a sign-in', () => {
  it.each([
    ['an RSA key without its modulus and exponent', [{ kty: 'RSA' }]],
    ['a key of an unknown type', [{ kty: 'XYZ', kid: 'odd' }]],
    ['a symmetric key', [{ kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ' }]],
    ['a good key beside one that cannot be imported', [goodKey(), { kty: 'RSA', kid: 'bad' }]],
    ['an RSA key with a modulus that is not base64url', [{ ...goodKey(), n: '!!!' }]],
  ])('calls an AUTH_JWKS_JSON holding %s misconfigured', async (_name, keys) => {
    await expectMisconfigured({ AUTH_JWKS_JSON: JSON.stringify({ keys }) }, 'AUTH_JWKS_JSON');
  });

  it('names a private key in AUTH_JWKS_JSON without echoing it', async () => {
    const priv = JSON.parse(testEnv.TEST_JWT_PRIVATE_JWK) as { d: string };
    const message = await expectMisconfigured(
      { AUTH_JWKS_JSON: JSON.stringify({ keys: [priv] }) },
      'AUTH_JWKS_JSON',
    );
    expect(message).toMatch(/private/);
    expect(message).not.toContain(priv.d.slice(0, 12));
  });

  it('calls an RSA key too short for jose to verify with (1024 bits) misconfigured', async () => {
    const pair = (await crypto.subtle.generateKey(
      {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 1024,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    const short = { ...(await exportJWK(pair.publicKey)), kid: 'short' };
    const message = await expectMisconfigured(
      { AUTH_JWKS_JSON: JSON.stringify({ keys: [short] }) },
      'AUTH_JWKS_JSON',
    );
    expect(message).toContain('1024-bit');
  });

  it('calls an AUTH_JWKS_JSON whose keys fit none of AUTH_JWT_ALGORITHMS misconfigured', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const ec = { ...(await exportJWK(publicKey)), kid: 'ec' };
    const message = await expectMisconfigured(
      { AUTH_JWKS_JSON: JSON.stringify({ keys: [ec] }), AUTH_JWT_ALGORITHMS: 'RS256' },
      'AUTH_JWKS_JSON',
    );
    expect(message).toContain('RS256');
  });

  it.each(['RS265', 'RS256,none', 'HS256', ' , '])(
    'refuses AUTH_JWT_ALGORITHMS=%j, naming what the edge does not know',
    async (algorithms) => {
      const message = await expectMisconfigured(
        { AUTH_JWT_ALGORITHMS: algorithms },
        'AUTH_JWT_ALGORITHMS',
      );
      const unknown = algorithms.split(',').pop()!.trim();
      if (unknown) expect(message).toContain(unknown);
    },
  );

  it('refuses a plain-http AUTH_JWKS_URL outside development (LiveKit not on loopback)', async () => {
    const fetched = vi.spyOn(globalThis, 'fetch');
    await expectMisconfigured(
      { AUTH_JWKS_JSON: undefined, AUTH_JWKS_URL: 'http://id.example.com/jwks.json' },
      'AUTH_JWKS_URL',
    );
    expect(fetched).not.toHaveBeenCalled();
  });

  it('allows a plain-http AUTH_JWKS_URL in development (LiveKit on loopback)', async () => {
    const jwks = { keys: [goodKey()] };
    vi.spyOn(globalThis, 'fetch').mockImplementation(async () => Response.json(jwks));
    const dev = {
      LIVEKIT_URL: 'ws://127.0.0.1:7880',
      AUTH_JWKS_JSON: undefined,
      AUTH_JWKS_URL: `http://127.0.0.1:5556/jwks-${crypto.randomUUID()}.json`,
    };
    expect((await call('/healthz', {}, dev)).status).toBe(200);
    const res = await call<TokenResponse>(
      '/token',
      { headers: await bearerFor('dev-http'), json: {} },
      dev,
    );
    expect(res.status).toBe(201);
  });

  it('still serves every valid configuration: several algorithms, keys for other uses beside', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const ec = { ...(await exportJWK(publicKey)), kid: 'ec', alg: 'ES256' };
    const enc = { ...goodKey(), kid: 'enc', use: 'enc' };
    const overrides = {
      AUTH_JWKS_JSON: JSON.stringify({ keys: [goodKey(), ec, enc] }),
      AUTH_JWT_ALGORITHMS: 'RS256,ES256,EdDSA',
    };
    expect((await call('/healthz', {}, overrides)).status).toBe(200);
    const res = await call('/token', { headers: await bearerFor('many'), json: {} }, overrides);
    expect(res.status).toBe(201);
  });
});

describe('keys jose would never pick for a sign-in are skipped, whatever their type', () => {
  const x25519 = {
    kty: 'OKP',
    crv: 'X25519',
    x: 'hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo',
    kid: 'key-agreement',
  };
  it.each<[string, Record<string, unknown>]>([
    ['a key of an unknown type marked "use":"enc"', { kty: 'XYZ', kid: 'enc-xyz', use: 'enc' }],
    [
      'a shared secret marked "use":"enc"',
      { kty: 'oct', kid: 'enc-oct', use: 'enc', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ' },
    ],
    ['a key of an unknown type whose key_ops do not verify', { kty: 'XYZ', key_ops: ['encrypt'] }],
    ['an X25519 key (key agreement, not EdDSA) without "use"', x25519],
  ])('serves sign-ins with AUTH_JWKS_JSON holding %s beside a good key', async (_name, key) => {
    const overrides = {
      AUTH_JWKS_JSON: JSON.stringify({ keys: [goodKey(), key] }),
      AUTH_JWT_ALGORITHMS: 'RS256,EdDSA',
    };
    expect((await call('/healthz', {}, overrides)).status).toBe(200);
    const res = await call(
      '/token',
      { headers: await bearerFor(`skips-${crypto.randomUUID()}`), json: {} },
      overrides,
    );
    expect(res.status).toBe(201);
  });
});

describe('a remote key set (AUTH_JWKS_URL) is checked when it is fetched', () => {
  const viaUrl = () => ({
    AUTH_JWKS_JSON: undefined,
    AUTH_JWKS_URL: `https://id.example.com/jwks-${crypto.randomUUID()}.json`,
  });
  const serve = (body: unknown) =>
    vi.spyOn(globalThis, 'fetch').mockImplementation(async () => Response.json(body));
  const signIn = async (overrides: Record<string, unknown>) =>
    call('/token', { headers: await bearerFor('remote-idp'), json: {} }, overrides);

  it.each([
    ['no key at all', { keys: [] }],
    ['only a key that cannot be imported', { keys: [{ kty: 'RSA', kid: 'test-key' }] }],
    ['only a key of an unknown type', { keys: [{ kty: 'XYZ', kid: 'test-key' }] }],
    ['the OpenID configuration instead of its jwks_uri', { issuer: 'https://id.example.com/' }],
  ])(
    'answers a valid sign-in 503 misconfigured when the answer holds %s, not 401 for every user',
    async (_name, body) => {
      serve(body);
      const res = await signIn(viaUrl());
      const { message } = expectError(res, 503, 'misconfigured');
      expect(message).toContain('AUTH_JWKS_URL');
      expect(res.headers.get('www-authenticate')).toBeNull();
    },
  );

  it('answers 503 misconfigured when the key the JWT names cannot be imported, though others can', async () => {
    const { publicKey } = await generateKeyPair('RS256', { extractable: true });
    const other = { ...(await exportJWK(publicKey)), kid: 'other', alg: 'RS256' };
    serve({ keys: [other, { kty: 'RSA', kid: 'test-key', alg: 'RS256' }] });
    const { message } = expectError(await signIn(viaUrl()), 503, 'misconfigured');
    expect(message).toContain('test-key');
  });

  it('logs a key set’s problem once (per isolate), however many sign-ins it answers 503', async () => {
    const { publicKey } = await generateKeyPair('RS256', { extractable: true });
    const other = { ...(await exportJWK(publicKey)), kid: 'other', alg: 'RS256' };
    serve({ keys: [other, { kty: 'RSA', kid: 'test-key', alg: 'RS256' }] });
    const errors = vi.spyOn(console, 'error');
    const overrides = viaUrl();
    for (let i = 0; i < 3; i++) expectError(await signIn(overrides), 503, 'misconfigured');
    const logged = errors.mock.calls.filter(([line]) => String(line).includes('misconfigured'));
    expect(logged).toHaveLength(1);
  });

  it('still answers 401 for a JWT no key of a usable set signed', async () => {
    serve({ keys: [goodKey()] });
    const forged = (await bearerFor('forged')).Authorization.slice(0, -4) + 'AAAA';
    const res = await call('/token', { headers: { Authorization: forged }, json: {} }, viaUrl());
    expectError(res, 401, 'invalid_credential');
  });

  it('keeps an unreachable key set an upstream failure, with the reason, not misconfigured', async () => {
    vi.spyOn(globalThis, 'fetch').mockImplementation(
      async () => new Response('down', { status: 502 }),
    );
    const res = await signIn(viaUrl());
    const { message } = expectError(res, 503, 'identity_provider_unreachable');
    expect(message).toMatch(/200/);
    expect(res.headers.get('retry-after')).toBe('5');
  });
});
