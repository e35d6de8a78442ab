import type { Context, MiddlewareHandler } from 'hono';
import { timingSafeEqual } from 'hono/utils/buffer';
import { decodeJwt, errors as joseErrors, jwtVerify } from 'jose';
import { verifyLiveKitJwt } from '../../wire-contract/index.ts';
import { ConfigError, type Config } from '../config.ts';
import type { AppEnv, Caller } from '../env.ts';
import { ApiError } from '../errors.ts';
import { identityKeySet, keySetFailure } from '../identity-provider/keys.ts';
import { randomId } from './random-id.ts';

type Kind = Caller['kind'];

/**
 * The longest bearer credential read. A participant token carries its holder's metadata and
 * attributes, so it must fit every token /token issues (which refuses to mint a longer one),
 * while staying under the 128 KB Cloudflare allows for all of a request's headers.
 */
export const MAX_CREDENTIAL_CHARS = 64 * 1024;

/** Resolves the caller from `Authorization: Bearer …`; deny by default, one check per kind. */
export function requireCaller(...allowed: Kind[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const caller = await resolveCaller(c, c.get('config'), allowed);
    if (!allowed.includes(caller.kind))
      throw new ApiError(403, 'forbidden', `a ${caller.kind} credential cannot call this endpoint`);
    c.set('caller', caller);
    await next();
  };
}

async function resolveCaller(c: Context, config: Config, allowed: Kind[]): Promise<Caller> {
  const header = c.req.header('authorization');
  if (!header) {
    if (config.AUTH_ALLOW_ANONYMOUS && allowed.includes('user'))
      return { kind: 'user', identity: `anon-${randomId(12)}`, anonymous: true };
    throw new ApiError(
      401,
      'unauthenticated',
      'missing credential: send Authorization: Bearer <token>',
      { 'WWW-Authenticate': 'Bearer' },
    );
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match || match[1]!.length > MAX_CREDENTIAL_CHARS)
    throw new ApiError(401, 'invalid_credential', 'Authorization must be "Bearer <token>"', {
      'WWW-Authenticate': 'Bearer',
    });
  const credential = match[1]!;
  if (await timingSafeEqual(credential, config.ADMIN_API_KEY)) return { kind: 'admin' };
  if (config.APP_API_KEY && (await timingSafeEqual(credential, config.APP_API_KEY)))
    return { kind: 'app' };
  let claims: { iss?: string };
  try {
    claims = decodeJwt(credential);
  } catch {
    throw new ApiError(401, 'invalid_credential', 'credential is neither a known key nor a JWT', {
      'WWW-Authenticate': 'Bearer',
    });
  }
  // Minted with the current pair, or with the previous one before a key rotation.
  if (config.liveKitKeyPairs.some((pair) => pair.apiKey === claims.iss))
    return participantFromLiveKitToken(credential, config);
  return userFromIdentityProvider(credential, config);
}

/**
 * A LiveKit token this edge minted. Its signature, issuer, identity and room are checked; its
 * expiry only marks it `expired`, because LiveKit refreshes a connected client's token inside the
 * SDK where the app cannot read it: the routes let an expired one act only while its call is open.
 * Beyond the longest possible call it is refused outright.
 */
async function participantFromLiveKitToken(jwt: string, config: Config): Promise<Caller> {
  const longestCallSeconds = config.TOKEN_TTL_SECONDS + config.MAX_CALL_DURATION_SECONDS;
  try {
    const grants = await verifyLiveKitJwt(jwt, config.liveKitKeyPairs, longestCallSeconds);
    if (!grants.sub || !grants.video?.room) throw new Error('no identity or room');
    const exp = (grants as { exp?: number }).exp;
    const expired = exp === undefined || exp * 1000 < Date.now() - CLOCK_TOLERANCE_MS;
    return { kind: 'participant', identity: grants.sub, room: grants.video.room, expired };
  } catch {
    throw new ApiError(401, 'invalid_credential', 'LiveKit token is invalid or expired', {
      'WWW-Authenticate': 'Bearer error="invalid_token"',
    });
  }
}

const CLOCK_TOLERANCE_MS = 10_000;

async function userFromIdentityProvider(jwt: string, config: Config): Promise<Caller> {
  const keys = identityKeySet(config);
  if (!keys)
    throw new ApiError(401, 'invalid_credential', 'end-user JWTs are not enabled on this server', {
      'WWW-Authenticate': 'Bearer',
    });
  try {
    const { payload } = await jwtVerify(jwt, keys, {
      issuer: config.AUTH_JWT_ISSUER,
      audience: config.AUTH_JWT_AUDIENCE,
      algorithms: config.AUTH_JWT_ALGORITHMS,
      requiredClaims: ['sub', 'exp'],
    });
    if (!payload.sub || payload.sub.length > 128)
      throw new ApiError(401, 'invalid_credential', 'JWT sub must be 1-128 characters');
    return { kind: 'user', identity: payload.sub, anonymous: false };
  } catch (err) {
    if (err instanceof ApiError) throw err;
    const www = { 'WWW-Authenticate': 'Bearer error="invalid_token"' };
    if (err instanceof joseErrors.JWTExpired)
      throw new ApiError(401, 'token_expired', 'JWT has expired', www);
    if (err instanceof joseErrors.JWTClaimValidationFailed)
      throw new ApiError(
        401,
        'invalid_credential',
        `JWT claim rejected: ${err.claim} (${err.reason})`,
        www,
      );
    // The key set's fault rather than the JWT's: never a 401 telling every user to sign in again.
    const failure = await keySetFailure(config, jwt, err);
    // Anyone can repeat this (a JWT naming a broken key): one error line per key set will do.
    if (failure?.kind === 'misconfigured')
      throw new ConfigError(
        `server configuration is invalid: ${failure.variable} (${failure.problem})`,
        { logOnceFor: failure.set },
      );
    if (failure?.kind === 'unreachable')
      throw new ApiError(
        503,
        'identity_provider_unreachable',
        `could not fetch the identity provider's keys (${failure.reason}); this is not a problem with the sign-in`,
        { 'Retry-After': '5' },
      );
    throw new ApiError(401, 'invalid_credential', 'JWT signature or algorithm rejected', www);
  }
}
