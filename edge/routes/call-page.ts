import { Hono } from 'hono';
import { configFrom, ConfigError } from '../config.ts';
import type { AppEnv } from '../env.ts';

/**
 * The call page's Content-Security-Policy. Its `connect-src` must name the LiveKit server, and
 * that is this Worker's LIVEKIT_URL, known only at run time: so the Worker serves `/` (wrangler.toml
 * `run_worker_first`) and sets the policy, while every other file keeps its static `_headers`.
 *
 * LiveKit is allowed in both forms of its one host: livekit-client opens the ws(s) signal
 * connection and also fetches the http(s) form (`/rtc/validate` after a failed join, region
 * settings, the online check). `'self'` covers `/token` and `/calls/…`.
 */
export function callPagePolicy(livekitUrl: string | undefined): string {
  const connect = ["'self'"];
  if (livekitUrl) {
    const { protocol, host } = new URL(livekitUrl);
    const secure = protocol === 'wss:' || protocol === 'https:';
    connect.push(`${secure ? 'wss' : 'ws'}://${host}`, `${secure ? 'https' : 'http'}://${host}`);
  }
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src ${connect.join(' ')}`,
    "media-src 'self' blob: mediastream:",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * The calls console's policy: it talks to this edge's ledger API only, so `connect-src 'self'` and
 * nothing else; its charts are inline SVG built in the DOM (no images, no inline styles).
 */
export const CONSOLE_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function livekitUrl(env: Env): string | undefined {
  try {
    return configFrom(env).LIVEKIT_URL;
  } catch (err) {
    // A bad config still serves the page (as static assets did), allowed to reach only the edge,
    // whose /token then answers 503 `misconfigured` and the page says the service is down.
    if (err instanceof ConfigError) return undefined;
    throw err;
  }
}

/**
 * Mounted before the app's secureHeaders middleware: the page's headers are `_headers`' (the same
 * as every other static file) plus this CSP, not the API's.
 */
export const callPageRoutes = new Hono<AppEnv>();
for (const path of ['/', '/index.html'])
  callPageRoutes.get(path, async (c) => {
    const asset = await c.env.ASSETS.fetch(c.req.raw);
    const page = new Response(asset.body, asset);
    page.headers.set('Content-Security-Policy', callPagePolicy(livekitUrl(c.env)));
    return withDevNotice(page, (c.env as { DEV_CALL_PAGE_NOTICE?: string }).DEV_CALL_PAGE_NOTICE);
  });

// The console (`console.html`, which the asset server answers at `/console`): same discipline.
for (const path of ['/console', '/console.html'])
  callPageRoutes.get(path, async (c) => {
    const asset = await c.env.ASSETS.fetch(c.req.raw);
    const page = new Response(asset.body, asset);
    page.headers.set('Content-Security-Policy', CONSOLE_POLICY);
    page.headers.set('Cache-Control', 'no-store');
    return page;
  });

// Browsers ask for /favicon.ico on their own: send them to the SVG one (a static asset).
callPageRoutes.get('/favicon.ico', (c) => c.redirect('/favicon.svg', 308));

/**
 * `npm run dev` only (scripts/dev.ts passes the var): a line at the top of the page saying what the
 * assistant runs on, e.g. the local stand-in models. Text, escaped; absent in any deployment.
 */
function withDevNotice(page: Response, notice: string | undefined): Response {
  if (!notice) return page;
  const text = notice.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
  return new HTMLRewriter()
    .on('main', {
      element(main) {
        main.prepend(`<p id="dev-notice" role="note"><strong>${text}</strong></p>`, { html: true });
      },
    })
    .transform(page);
}
