import { exportJWK, generateKeyPair } from 'jose';

/**
 * Vars and secrets for the in-workerd edge tests, set explicitly so a developer's .dev.vars never
 * changes what CI sees. The identity provider's key pair is made fresh per run.
 */
export async function edgeTestBindings() {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const pub = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
  const priv = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256' };
  return {
    LIVEKIT_URL: 'http://livekit.test:7880',
    LIVEKIT_API_KEY: 'testkey',
    LIVEKIT_API_SECRET: 'test-secret-test-secret-test-secret',
    LIVEKIT_TIMEOUT_MS: '1000',
    ADMIN_API_KEY: 'admin-key-0123456789',
    APP_API_KEY: 'app-key-0123456789ab',
    AGENT_NAME: 'voice-agent',
    AGENT_ALLOWED_NAMES: 'voice-agent,support-agent',
    AGENT_END_MODE: 'end_for_all',
    TOKEN_TTL_SECONDS: '600',
    MAX_CALL_DURATION_SECONDS: '1800',
    BACKSTOP_GRACE_SECONDS: '60',
    // Off: each joining caller would otherwise hold its test for the wait (test/edge/agent-arrival).
    AGENT_WAIT_SECONDS: '0',
    CORS_ALLOWED_ORIGINS: 'https://app.example.com',
    AUTH_ALLOW_ANONYMOUS: 'false',
    AUTH_JWKS_JSON: JSON.stringify({ keys: [pub] }),
    AUTH_JWT_ISSUER: 'https://id.example.com/',
    AUTH_JWT_AUDIENCE: 'voice-app',
    AUTH_JWT_ALGORITHMS: 'RS256',
    TEST_JWT_PRIVATE_JWK: JSON.stringify(priv),
  };
}
