// npm run bench:edge: POST /token (JWT caller) and GET /healthz on the built Worker bundle served by
// workerd (Miniflare's HTTP server, not wrangler dev's proxy), beside a plain Node server minting the
// same token with livekit-server-sdk. autocannon, loopback, 10 s per target, 16 connections.
import autocannon from 'autocannon';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';
import { printTable } from './table.ts';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 16;

const out = mkdtempSync(join(tmpdir(), 'lkvc-bench-edge-'));
execFileSync('node_modules/.bin/wrangler', ['deploy', '--dry-run', '--outdir', out], {
  stdio: 'pipe',
  env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
});
const bundle = readFileSync(join(out, 'index.js'));
const gzipKiB = gzipSync(bundle).length / 1024;

const { publicKey, privateKey } = await generateKeyPair('RS256');
const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] };
const jwt = await new SignJWT({})
  .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
  .setSubject('bench-user')
  .setIssuer('https://id.bench/')
  .setAudience('bench')
  .setExpirationTime('1h')
  .sign(privateKey);

// Miniflare 5 (wrangler's) still takes the v4 option shape through its converter.
const mf = new Miniflare(
  convertV4MiniflareOptions({
    port: 0,
    host: '127.0.0.1',
    name: 'edge',
    modules: true,
    // `script`, not `scriptPath`: Miniflare 5's v4 converter fails to start the bundle from a path.
    script: readFileSync(join(out, 'index.js'), 'utf8'),
    compatibilityDate: '2026-11-01',
    d1Databases: ['LEDGER'],
    // The limiter stays in the path; the limit is lifted so every request does the full work.
    ratelimits: {
      RATE_LIMIT_IDENTITY: { namespace_id: '1001', simple: { limit: 1e9, period: 60 } },
      RATE_LIMIT_IP: { namespace_id: '1002', simple: { limit: 1e9, period: 60 } },
    },
    bindings: {
      LIVEKIT_URL: 'ws://127.0.0.1:7880',
      LIVEKIT_API_KEY: 'devkey',
      LIVEKIT_API_SECRET: 'secret',
      ADMIN_API_KEY: 'bench-admin-key-0123456789',
      AGENT_NAME: 'voice-agent',
      AUTH_JWKS_JSON: JSON.stringify(jwks),
      AUTH_JWT_ISSUER: 'https://id.bench/',
      AUTH_JWT_AUDIENCE: 'bench',
      // Miniflare relays each console line to Node, which would dominate; Cloudflare does not.
      LOG_LEVEL: 'warn',
    },
  }),
);
const edgeUrl = (await mf.ready).toString().replace(/\/$/, '');
const ledger = await mf.getD1Database('LEDGER');
for (const file of readdirSync('edge/migrations').sort()) {
  for (const stmt of readFileSync(join('edge/migrations', file), 'utf8')
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter(Boolean)) {
    await ledger.prepare(stmt).run();
  }
}

const plain = createServer(async (req, res) => {
  for await (const _ of req);
  const at = new AccessToken('devkey', 'secret', { identity: 'bench-user', ttl: 600 });
  at.addGrant({
    roomJoin: true,
    room: `call-${crypto.randomUUID()}`,
    canPublish: true,
    canSubscribe: true,
    canPublishData: true,
  });
  at.roomConfig = new RoomConfiguration({
    agents: [new RoomAgentDispatch({ agentName: 'voice-agent', metadata: '{}' })],
  });
  res
    .writeHead(201, { 'content-type': 'application/json' })
    .end(
      JSON.stringify({ server_url: 'ws://127.0.0.1:7880', participant_token: await at.toJwt() }),
    );
});
await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
const plainUrl = `http://127.0.0.1:${(plain.address() as { port: number }).port}`;

async function load(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
) {
  const r = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: DURATION,
    method: (init.method ?? 'GET') as 'GET',
    headers: init.headers,
    body: init.body,
  });
  const ok = r['2xx'];
  if (r.non2xx > 0 || r.errors > 0) console.warn(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { rps: Math.round(ok / DURATION), p50: r.latency.p50, p99: r.latency.p99 };
}

const tokenInit = {
  method: 'POST',
  headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
  body: '{"participant_name":"Bench"}',
};
const token = await load(`${edgeUrl}/token`, tokenInit);
const admin = {
  authorization: 'Bearer bench-admin-key-0123456789',
  'content-type': 'application/json',
};
// Two rows that split /token's cost: without the rate limiter (backend key), and one D1 read alone.
const backendToken = await load(`${edgeUrl}/token`, {
  method: 'POST',
  headers: admin,
  body: '{"participant_identity":"bench-backend"}',
});
const d1Read = await load(`${edgeUrl}/calls?limit=1`, { headers: admin });
const health = await load(`${edgeUrl}/healthz`);
const node = await load(plainUrl, { method: 'POST', body: '{}' });
await mf.dispose();
plain.close();

printTable(
  'Edge throughput (bench:edge)',
  ['target', 'req/s', 'p50 ms', 'p99 ms'],
  [
    ['POST /token, JWT caller (workerd)', token.rps, token.p50, token.p99],
    [
      'POST /token, backend key: no rate limiter (workerd)',
      backendToken.rps,
      backendToken.p50,
      backendToken.p99,
    ],
    ['GET /calls?limit=1: auth + one D1 read (workerd)', d1Read.rps, d1Read.p50, d1Read.p99],
    ['GET /healthz (workerd)', health.rps, health.p50, health.p99],
    ['plain Node http + livekit-server-sdk token', node.rps, node.p50, node.p99],
  ],
);
console.log(
  `\n/token ÷ /healthz on workerd: ${(token.rps / health.rps).toFixed(2)} (target ≥ 0.50)`,
);
console.log(
  `/token on workerd ÷ plain Node: ${(token.rps / node.rps).toFixed(2)} (bare token route measured ~0.30)`,
);
console.log(
  `bundle (wrangler deploy --dry-run): ${(bundle.length / 1024).toFixed(1)} KiB, ${gzipKiB.toFixed(1)} KiB gzipped (target ≤ 100 KiB)`,
);
