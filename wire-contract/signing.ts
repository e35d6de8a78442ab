import { decodeJwt } from 'jose';
import { AccessToken, TokenVerifier, type ClaimGrants } from 'livekit-server-sdk';

/**
 * Signs a body the way LiveKit signs its webhooks: a short-lived HS256 JWT (issuer = API key) whose
 * `sha256` claim is base64(SHA-256(body)). The edge verifies agent reports with the same scheme it
 * uses for LiveKit webhooks, so one key pair covers both.
 */
export async function signBody(
  body: string,
  apiKey: string,
  apiSecret: string,
  ttlSeconds = 300,
): Promise<string> {
  const token = new AccessToken(apiKey, apiSecret, { ttl: ttlSeconds });
  token.sha256 = await sha256Base64(body);
  return token.toJwt();
}

export type BodyVerification =
  | { ok: true }
  | { ok: false; problem: 'missing_signature' | 'bad_signature' | 'body_hash_mismatch' };

/** A LiveKit API key and its secret. */
export type KeyPair = { apiKey: string; apiSecret: string };

/**
 * Verifies a JWT signed with one of `keyPairs` (signature, `exp` required, issuer): the pair is
 * chosen by the JWT's `iss`, which LiveKit sets to the API key, so during a key rotation the
 * previous pair checks what was signed with it and no secret is tried on a JWT it did not sign.
 * Throws when no pair has that key or the JWT does not verify with it.
 */
export async function verifyLiveKitJwt(
  jwt: string,
  keyPairs: readonly KeyPair[],
  clockToleranceSeconds: number,
): Promise<ClaimGrants> {
  const { iss } = decodeJwt(jwt);
  const pair = keyPairs.find((p) => p.apiKey === iss);
  if (!pair) throw new Error('signed with a key this side does not hold');
  return new TokenVerifier(pair.apiKey, pair.apiSecret).verify(jwt, clockToleranceSeconds);
}

/**
 * Verifies signature, expiry (exp is required) and the body hash, with whichever of `keyPairs`
 * signed it (the edge holds the previous pair beside the current one during a rotation).
 * Accepts a bare JWT or "Bearer <jwt>".
 */
export async function verifySignedBody(
  body: string,
  authorization: string | undefined,
  keyPairs: readonly KeyPair[],
  clockToleranceSeconds?: number,
): Promise<BodyVerification>;
/** The same with one pair (what the agent's tests check its signatures with). */
export async function verifySignedBody(
  body: string,
  authorization: string | undefined,
  apiKey: string,
  apiSecret: string,
  clockToleranceSeconds?: number,
): Promise<BodyVerification>;
export async function verifySignedBody(
  body: string,
  authorization: string | undefined,
  keys: readonly KeyPair[] | string,
  secretOrTolerance?: string | number,
  tolerance?: number,
): Promise<BodyVerification> {
  const keyPairs =
    typeof keys === 'string' ? [{ apiKey: keys, apiSecret: String(secretOrTolerance) }] : keys;
  const clockToleranceSeconds =
    (typeof keys === 'string' ? tolerance : (secretOrTolerance as number | undefined)) ?? 10;
  const jwt = authorization?.replace(/^Bearer\s+/i, '').trim();
  if (!jwt) return { ok: false, problem: 'missing_signature' };
  let claims: { sha256?: string };
  try {
    claims = await verifyLiveKitJwt(jwt, keyPairs, clockToleranceSeconds);
  } catch {
    return { ok: false, problem: 'bad_signature' };
  }
  if (!claims.sha256 || claims.sha256 !== (await sha256Base64(body)))
    return { ok: false, problem: 'body_hash_mismatch' };
  return { ok: true };
}

export async function sha256Base64(body: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest('SHA-256', new TextEncoder().encode(body)),
  );
  let binary = '';
  for (const byte of digest) binary += String.fromCharCode(byte);
  return btoa(binary);
}
