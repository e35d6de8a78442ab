import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  importJWK,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';

/**
 * The JWS algorithms an end-user JWT may use, with the key each needs (its type, and the curves
 * jose picks a key of for it): what jose verifies with Web Crypto in workerd (no HS*: a key set
 * holds public keys; no ES256K: no such curve here).
 */
export const JWT_ALGORITHMS: Record<
  string,
  { kty: 'RSA' | 'EC' | 'OKP'; curves?: readonly string[] }
> = {
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', curves: ['P-256'] },
  ES384: { kty: 'EC', curves: ['P-384'] },
  ES512: { kty: 'EC', curves: ['P-521'] },
  EdDSA: { kty: 'OKP', curves: ['Ed25519', 'Ed448'] },
  Ed25519: { kty: 'OKP', curves: ['Ed25519'] },
};

type Jwk = Record<string, unknown>;

/**
 * Whether jose would pick this key of a set to verify a JWT signed with `alg` (naming `kid`, when
 * it names one): jose 5's own rule (jwks/local.js: type, kid, alg, use, key_ops, curve). The
 * configuration check and the per-sign-in diagnosis both judge keys by it, so they judge exactly
 * the keys a sign-in can reach.
 */
function josePicks(jwk: Jwk, alg: string, kid?: unknown): boolean {
  const needs = JWT_ALGORITHMS[alg];
  if (!needs || jwk.kty !== needs.kty) return false;
  if (typeof kid === 'string' && jwk.kid !== kid) return false;
  if (typeof jwk.alg === 'string' && jwk.alg !== alg) return false;
  if (!forVerifying(jwk)) return false;
  return needs.curves === undefined || needs.curves.includes(jwk.crv as string);
}

/** Not marked for another use (`use`, `key_ops`): jose may pick it for a signature. */
function forVerifying(jwk: Jwk): boolean {
  if (typeof jwk.use === 'string' && jwk.use !== 'sig') return false;
  return !Array.isArray(jwk.key_ops) || jwk.key_ops.includes('verify');
}
/** One key of a set: the configured algorithms it verifies with, or why it cannot. */
type KeyFinding = { jwk: Jwk; label: string; usableFor: string[]; problem?: string };

// jose's own minimum for RS*/PS* at verification: a smaller key would fail every sign-in there.
const MIN_RSA_BITS = 2048;

async function inspectKey(jwk: unknown, index: number, algorithms: readonly string[]) {
  const key = (typeof jwk === 'object' && jwk !== null ? jwk : {}) as Jwk;
  const kid = typeof key.kid === 'string' ? ` (kid ${key.kid.slice(0, 64)})` : '';
  const finding: KeyFinding = { jwk: key, label: `key ${index + 1}${kid}`, usableFor: [] };
  const kty = key.kty;
  // A private key published is a leak whatever it is marked for.
  if ('d' in key) finding.problem = 'holds private key material; publish only the public key';
  // Keys meant for something else are never chosen for a signature; they are not an error.
  if (finding.problem || !forVerifying(key)) return finding;
  if (kty === 'oct')
    finding.problem = 'is a shared secret (kty oct); JWTs are checked with public keys';
  else if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP')
    finding.problem = `has a key type (kty) the edge does not know: use RSA, EC or OKP`;
  if (finding.problem) return finding;
  for (const alg of algorithms) {
    if (!josePicks(key, alg)) continue;
    try {
      const imported = await importJWK({ ...(key as unknown as JWK), ext: true }, alg);
      if (!(imported instanceof CryptoKey) || imported.type !== 'public')
        throw new Error('not a public key');
      const bits = (imported.algorithm as { modulusLength?: number }).modulusLength;
      if (bits !== undefined && bits < MIN_RSA_BITS)
        throw new Error(`${bits}-bit modulus; at least ${MIN_RSA_BITS} needed`);
      finding.usableFor.push(alg);
    } catch (err) {
      const reason = err instanceof Error ? err.message.slice(0, 160) : 'import failed';
      finding.problem ??= `cannot be imported for ${alg}: ${reason}`;
    }
  }
  return finding;
}

const inspected = new Map<string, Promise<KeyFinding[] | undefined>>();

/** Imports every key of a set once per set and algorithm list (undefined: not a key set). */
function inspectKeySet(jwks: unknown, algorithms: readonly string[]) {
  const id = `${algorithms.join(',')}\n${JSON.stringify(jwks)}`;
  let result = inspected.get(id);
  if (!result) {
    const keys = (jwks as { keys?: unknown } | null)?.keys;
    result = Array.isArray(keys)
      ? Promise.all(keys.map((k, i) => inspectKey(k, i, algorithms)))
      : Promise.resolve(undefined);
    // Bounded: a few sets per isolate (the configured one, as an identity provider rotates it).
    if (inspected.size >= 16) inspected.delete(inspected.keys().next().value!);
    inspected.set(id, result);
  }
  return result;
}

function noUsableKey(findings: KeyFinding[], algorithms: readonly string[]) {
  if (findings.some((f) => f.usableFor.length > 0)) return undefined;
  const first = findings.find((f) => f.problem);
  return `holds no key usable with AUTH_JWT_ALGORITHMS=${algorithms.join(',')}${first ? `: ${first.label} ${first.problem}` : ''}`;
}

/**
 * Whether an inline key set can serve sign-ins: every key imports (or is meant for something else)
 * and one at least fits AUTH_JWT_ALGORITHMS. The configuration's own check; undefined = fine.
 */
export async function inlineKeySetProblem(
  json: string,
  algorithms: readonly string[],
): Promise<string | undefined> {
  const findings = await inspectKeySet(JSON.parse(json), algorithms);
  if (!findings) return 'is not a JSON Web Key Set';
  const broken = findings.find((f) => f.problem);
  return broken ? `${broken.label} ${broken.problem}` : noUsableKey(findings, algorithms);
}

type RemoteSet = ReturnType<typeof createRemoteJWKSet>;
/** What of the edge's config the key set needs (config.ts imports this file, not the reverse). */
type IdentityProviderConfig = {
  AUTH_JWKS_JSON?: string;
  AUTH_JWKS_URL?: string;
  AUTH_JWT_ALGORITHMS: readonly string[];
};
// Module-level, one set per JWKS source per isolate: jose caches imported and fetched keys per set.
const keySets = new Map<string, JWTVerifyGetKey | RemoteSet>();

/** The identity provider's key set (inline or fetched and cached), if end-user JWTs are on. */
export function identityKeySet(config: IdentityProviderConfig): JWTVerifyGetKey | undefined {
  const source = config.AUTH_JWKS_JSON ?? config.AUTH_JWKS_URL;
  if (!source) return undefined;
  let set = keySets.get(source);
  if (!set) {
    set = config.AUTH_JWKS_JSON
      ? createLocalJWKSet(JSON.parse(config.AUTH_JWKS_JSON))
      : createRemoteJWKSet(new URL(source), {
          timeoutDuration: 3000,
          cooldownDuration: 30_000,
          cacheMaxAge: 600_000,
        });
    keySets.set(source, set);
  }
  return set;
}

/** Why a JWT failed to verify when it is not the JWT's fault. */
export type KeySetFailure =
  | { kind: 'unreachable'; reason: string }
  | {
      kind: 'misconfigured';
      variable: 'AUTH_JWKS_URL' | 'AUTH_JWKS_JSON';
      problem: string;
      /** Which key set: its URL, or the inline one. */
      set: string;
    };

/**
 * After a JWT failed to verify: was it the identity provider's key set rather than the sign-in?
 * A remote set that could not be fetched is an upstream failure; one fetched (or configured)
 * without a usable key, or whose key this JWT names cannot be imported, is a configuration
 * problem that would refuse every user. Anything else is the JWT's own fault (undefined).
 */
export async function keySetFailure(
  config: IdentityProviderConfig,
  jwt: string,
  err: unknown,
): Promise<KeySetFailure | undefined> {
  const remote = config.AUTH_JWKS_JSON ? undefined : config.AUTH_JWKS_URL;
  const variable = remote ? 'AUTH_JWKS_URL' : 'AUTH_JWKS_JSON';
  const misconfigured = (problem: string): KeySetFailure => ({
    kind: 'misconfigured',
    variable,
    problem: remote ? `the key set it answers ${problem}` : problem,
    set: remote ?? 'AUTH_JWKS_JSON',
  });
  if (remote) {
    const reason = fetchFailure(err);
    if (reason) return { kind: 'unreachable', reason };
    if (err instanceof joseErrors.JWKSInvalid && /malformed/.test(err.message))
      return misconfigured('is JSON but not a key set ({"keys":[…]}); is it the jwks_uri?');
  }
  const jwks = remote
    ? (keySets.get(remote) as RemoteSet | undefined)?.jwks()
    : JSON.parse(config.AUTH_JWKS_JSON!);
  const findings = jwks && (await inspectKeySet(jwks, config.AUTH_JWT_ALGORITHMS));
  if (findings) {
    const none = noUsableKey(findings, config.AUTH_JWT_ALGORITHMS);
    if (none) return misconfigured(none);
    const named = keysNamedBy(jwt, findings, config.AUTH_JWT_ALGORITHMS);
    if (named && named.keys.length > 0 && !named.keys.some((f) => f.usableFor.includes(named.alg)))
      return misconfigured(`${named.keys[0]!.label} ${named.keys[0]!.problem ?? 'is not usable'}`);
  }
  // fetch() throws a TypeError when the network fails; a set fetched earlier may still be cached.
  if (remote && err instanceof TypeError) return { kind: 'unreachable', reason: 'a network error' };
  return undefined;
}

/** The keys of the set jose would pick for this JWT (by alg, kid, use, key_ops and curve). */
function keysNamedBy(jwt: string, findings: KeyFinding[], algorithms: readonly string[]) {
  let header;
  try {
    header = decodeProtectedHeader(jwt);
  } catch {
    return undefined;
  }
  const alg = header.alg;
  if (!alg || !algorithms.includes(alg) || !JWT_ALGORITHMS[alg]) return undefined;
  return { alg, keys: findings.filter(({ jwk }) => josePicks(jwk, alg, header.kid)) };
}

/** The reason a remote key set could not be had, if that is why verifying failed. */
function fetchFailure(err: unknown): string | undefined {
  if (err instanceof joseErrors.JWKSTimeout) return 'no answer within 3 s';
  if (err instanceof Error && err.name === 'AbortError') return 'no answer within 3 s';
  if (err instanceof joseErrors.JOSEError && err.code === 'ERR_JOSE_GENERIC') {
    // jose 5 names these two only in the message of a generic error.
    if (/Expected 200 OK/.test(err.message)) return 'an answer other than 200 OK';
    if (/as JSON/.test(err.message)) return 'an answer that is not JSON';
  }
  return undefined;
}
