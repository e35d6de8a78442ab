import { describe, expect, it } from 'vitest';
import { bearerFor, call, expectError } from '../support/edge/helpers.ts';

const ALLOWED = 'https://app.example.com';
// A bad value in a variable that has nothing to do with CORS.
const BROKEN = { ADMIN_API_KEY: 'short' };

const preflight = (origin: string, overrides: Record<string, unknown>) =>
  call(
    '/token',
    {
      method: 'OPTIONS',
      headers: {
        Origin: origin,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'authorization,content-type',
      },
    },
    overrides,
  );
const tokenRequest = async (origin: string, overrides: Record<string, unknown>) =>
  call('/token', { headers: { ...(await bearerFor('x')), Origin: origin }, json: {} }, overrides);

describe('with an invalid configuration, a cross-origin app still reads 503 misconfigured', () => {
  it('answers an allow-listed origin’s preflight, then its POST /token with CORS headers and the JSON 503', async () => {
    const pre = await preflight(ALLOWED, BROKEN);
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(pre.headers.get('access-control-allow-headers')).toMatch(/authorization/i);
    expect(pre.headers.get('access-control-allow-methods')).toMatch(/POST/);

    const res = await tokenRequest(ALLOWED, BROKEN);
    expect(res.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(res.headers.get('access-control-expose-headers')).toMatch(/x-request-id/i);
    const { message } = expectError(res, 503, 'misconfigured');
    expect(message).toContain('ADMIN_API_KEY');
    expect(JSON.stringify(res.data)).not.toContain('short"');
  });

  it('gives any other origin no CORS header, as when the configuration is valid', async () => {
    const pre = await preflight('https://evil.example', BROKEN);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const res = await tokenRequest('https://evil.example', BROKEN);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expectError(res, 503, 'misconfigured');
  });

  it('refuses an allow-list entry that is not an origin, naming the variable; the well-formed entries still get the error', async () => {
    const lists = [
      `${ALLOWED}, https://other.example.com/`, // a trailing slash never matches an Origin header
      `${ALLOWED},*`, // no wildcard: browsers send the user's credential
      `${ALLOWED},https://other.example.com/app`,
    ];
    for (const list of lists) {
      const bad = { CORS_ALLOWED_ORIGINS: list };
      const health = await call('/healthz', {}, bad);
      expect(expectError(health, 503, 'misconfigured').message).toContain('CORS_ALLOWED_ORIGINS');
      const pre = await preflight(ALLOWED, bad);
      expect(pre.headers.get('access-control-allow-origin')).toBe(ALLOWED);
      const res = await tokenRequest(ALLOWED, bad);
      expect(res.headers.get('access-control-allow-origin')).toBe(ALLOWED);
      expectError(res, 503, 'misconfigured');
      // Never a wildcard, and never an origin the operator did not list as one.
      for (const origin of ['https://other.example.com', 'https://evil.example']) {
        const other = await tokenRequest(origin, bad);
        expect(other.headers.get('access-control-allow-origin')).toBeNull();
      }
    }
  });

  it('takes origins as browsers send them: scheme, host and port, of any scheme an app uses', async () => {
    const list = 'http://localhost:5173, capacitor://localhost, http://[::1]:8080';
    for (const origin of ['http://localhost:5173', 'capacitor://localhost', 'http://[::1]:8080']) {
      const res = await call(
        '/healthz',
        { headers: { Origin: origin } },
        { CORS_ALLOWED_ORIGINS: list },
      );
      expect(res.status).toBe(200);
      expect(res.headers.get('access-control-allow-origin')).toBe(origin);
    }
  });
});
