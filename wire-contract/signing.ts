import { AccessToken, TokenVerifier } from 'livekit-server-sdk';

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

/** Verifies signature, expiry (exp is required) and the body hash. Accepts a bare JWT or "Bearer <jwt>". */
export async function verifySignedBody(
  body: string,
  authorization: string | undefined,
  apiKey: string,
  apiSecret: string,
  clockToleranceSeconds = 10,
): Promise<BodyVerification> {
  const jwt = authorization?.replace(/^Bearer\s+/i, '').trim();
  if (!jwt) return { ok: false, problem: 'missing_signature' };
  let claims: { sha256?: string };
  try {
    claims = await new TokenVerifier(apiKey, apiSecret).verify(jwt, clockToleranceSeconds);
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
