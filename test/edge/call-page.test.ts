import { SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { call, testEnv } from '../support/edge/helpers.ts';

/** `directive → sources` of a Content-Security-Policy header. */
function policy(res: { headers: Headers }): Record<string, string[]> {
  const header = res.headers.get('content-security-policy');
  expect(header).toBeTruthy();
  return Object.fromEntries(
    header!
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map(([name, ...sources]) => [name, sources]),
  );
}

// The test env's LIVEKIT_URL is http://livekit.test:7880 (test/support/edge-test-bindings.ts).
describe('GET /: the call page, with a CSP the Worker sets from its config', () => {
  it('connect-src names exactly the edge and the LiveKit host (ws and http forms), nothing else', async () => {
    expect(testEnv.LIVEKIT_URL).toBe('http://livekit.test:7880');
    const res = await SELF.fetch('https://edge.test/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await res.text()).toContain('<main id="app">');
    const csp = policy(res);
    expect(csp['connect-src']).toEqual([
      "'self'",
      'ws://livekit.test:7880',
      'http://livekit.test:7880',
    ]);
    expect(csp['base-uri']).toEqual(["'none'"]);
    expect(csp['form-action']).toEqual(["'none'"]);
    expect(csp['frame-ancestors']).toEqual(["'none'"]);
    expect(csp['script-src']).toEqual(["'self'"]);
    expect(csp['media-src']).toEqual(["'self'", 'blob:', 'mediastream:']);
    // No network scheme or wildcard on its own anywhere: a network source names one origin.
    for (const sources of Object.values(csp))
      for (const s of sources) expect(s).not.toMatch(/^(\*|wss?:|https?:)$|\*/);
  });

  it('keeps the static security headers on the page', async () => {
    const res = await SELF.fetch('https://edge.test/');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('permissions-policy')).toBe(
      'microphone=(self), camera=(), geolocation=()',
    );
  });

  it('a wss:// LiveKit URL is allowed as wss and https on its one host', async () => {
    const res = await call('/', {}, { LIVEKIT_URL: 'wss://project-abc.livekit.cloud' });
    expect(res.status).toBe(200);
    expect(policy(res)['connect-src']).toEqual([
      "'self'",
      'wss://project-abc.livekit.cloud',
      'https://project-abc.livekit.cloud',
    ]);
  });

  it('a bad configuration still serves the page, allowed to reach only the edge (whose /token says why)', async () => {
    const res = await call('/', {}, { LIVEKIT_API_KEY: '' });
    expect(res.status).toBe(200);
    expect(policy(res)['connect-src']).toEqual(["'self'"]);
    expect((await call('/token', { json: {} }, { LIVEKIT_API_KEY: '' })).status).toBe(503);
  });

  it('/index.html never serves the page without the Worker’s CSP', async () => {
    const res = await SELF.fetch('https://edge.test/index.html', { redirect: 'manual' });
    if (res.status >= 300 && res.status < 400)
      expect(new URL(res.headers.get('location')!, 'https://edge.test/').pathname).toBe('/');
    else expect(policy(res)['connect-src']).toContain('ws://livekit.test:7880');
  });

  // Static files are answered by the asset server before the Worker (not through SELF here), with
  // the same `_headers` the ASSETS binding applies.
  it('the script and styles stay static files any origin may load, with no connect-src of their own', async () => {
    for (const path of ['/call-page.js', '/call-page.css']) {
      const res = await testEnv.ASSETS.fetch(`https://edge.test${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(policy(res)['connect-src']).toBeUndefined();
      await res.body?.cancel();
    }
  });
});
