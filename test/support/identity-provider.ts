import { exportJWK, generateKeyPair, SignJWT } from 'jose';

/**
 * An app's identity provider for the e2e edge: a fresh RS256 key whose public half the edge is
 * given inline (AUTH_JWKS_JSON), and a signer for end users' JWTs, valid five minutes.
 */
export async function testIdentityProvider() {
  const issuer = 'https://id.example.test/';
  const audience = 'voice-app';
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'e2e-key', alg: 'RS256', use: 'sig' };
  return {
    edgeVars: {
      AUTH_JWKS_JSON: JSON.stringify({ keys: [jwk] }),
      AUTH_JWT_ISSUER: issuer,
      AUTH_JWT_AUDIENCE: audience,
    },
    signUserJwt: (sub: string) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'RS256', kid: 'e2e-key' })
        .setSubject(sub)
        .setIssuer(issuer)
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey),
  };
}
