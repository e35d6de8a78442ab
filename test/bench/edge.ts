// npm run bench:edge: POST /token (JWT caller) and GET /healthz on the built Worker bundle served by
// workerd (Miniflare's HTTP server, not wrangler dev's proxy), beside a plain Node server doing the
// same work as the Worker's route: verify the JWT against the JWKS, count the caller in a rate
// window, write the call to SQLite, mint the token. autocannon, loopback, 16 connections; every
// target is warmed up, then measured twice, once in each order, and the two runs averaged.
// 2xx/s counts 2xx answers only (for /token: tokens issued); every other answer or error is in the
// failed column and makes the run exit non-zero (table.ts).
import autocannon from 'autocannon';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';
import { failedCell, printTable } from './table.ts';

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
/**
 * End-user JWTs, one subject each, signed before the run that uses them (signing is not measured).
 * The open-call cap (MAX_OPEN_CALLS_PER_CALLER, 3 by default) refuses a caller's fourth open call,
 * and no call in this bench ever ends, so one signed-in user would measure refusals after three
 * requests: every /token request here is a user of its own, as a crowd signing in is.
 */
const jwts: string[] = [];
async function signJwts(count: number) {
  while (jwts.length < count)
    jwts.push(
      await new SignJWT({})
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setSubject(`bench-user-${jwts.length}`)
        .setIssuer('https://id.bench/')
        .setAudience('bench')
        .setExpirationTime('1h')
        .sign(privateKey),
    );
}

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
    // The call object (a call's deadline alarm): /token asks none, as the routes stand.
    durableObjects: { CALLS: { className: 'Call', useSQLite: true } },
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

// The Worker's /token work, in plain Node: JWT verification, a rate window, a SQLite write, the token.
const keys = createLocalJWKSet(jwks);
const sqlite = new DatabaseSync(join(out, 'plain-ledger.sqlite'));
sqlite.exec(
  'CREATE TABLE calls (room TEXT PRIMARY KEY, identity TEXT, created_at INTEGER, deadline_at INTEGER)',
);
const insert = sqlite.prepare('INSERT INTO calls VALUES (?, ?, ?, ?)');
const windows = new Map<string, { window: number; count: number }>();
const plain = createServer(async (req, res) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  const { payload } = await jwtVerify((req.headers.authorization ?? '').slice(7), keys, {
    issuer: 'https://id.bench/',
    audience: 'bench',
  });
  const identity = payload.sub!;
  const window = Math.floor(Date.now() / 60_000);
  const seen = windows.get(identity);
  windows.set(identity, { window, count: seen?.window === window ? seen.count + 1 : 1 });
  const { participant_name } = JSON.parse(body || '{}') as { participant_name?: string };
  const room = `call-${crypto.randomUUID()}`;
  insert.run(room, identity, Date.now(), Date.now() + 2_400_000);
  const at = new AccessToken('devkey', 'secret', { identity, name: participant_name, ttl: 600 });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true });
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

type Target = {
  label: string;
  url: string;
  init?: { method?: string; headers?: Record<string, string>; body?: string };
  /** Each request a new end user: its cursor into `jwts`, and the rate last seen, to sign ahead. */
  users?: { next: number; perSecond: number };
};
/** `failures`: how many of each kind (a status code, errors, reused users). */
type Result = { rps: number; p50: number; p99: number; failures: Map<string, number> };

async function measure(t: Target, seconds: number): Promise<Result> {
  const users = t.users;
  // Twice the last rate seen (a first guess for the warm-up), so the run never runs out of users.
  if (users)
    await signJwts(users.next + Math.ceil(2 * users.perSecond * seconds) + 4 * CONNECTIONS);
  let reused = 0;
  const r = await autocannon({
    url: t.url,
    connections: CONNECTIONS,
    duration: seconds,
    method: (t.init?.method ?? 'GET') as 'GET',
    headers: t.init?.headers,
    body: t.init?.body,
    ...(users && {
      requests: [
        {
          setupRequest: (req) => {
            const i = users.next++;
            if (i >= jwts.length) reused++;
            const authorization = `Bearer ${jwts[i % jwts.length]}`;
            return { ...req, headers: { ...req.headers, authorization } };
          },
        },
      ],
    }),
  });
  if (users) users.perSecond = (r['2xx'] + r.non2xx) / seconds;
  const failures = new Map<string, number>();
  for (const [code, { count = 0 }] of Object.entries(r.statusCodeStats ?? {}))
    if (!code.startsWith('2')) failures.set(`HTTP ${code}`, count);
  if (r.errors) failures.set('connection errors and timeouts', r.errors);
  // A user signing in twice is not the crowd this row measures, even if the cap lets it through.
  if (reused) failures.set('users reused (the signed JWTs ran out)', reused);
  return { rps: r['2xx'] / seconds, p50: r.latency.p50, p99: r.latency.p99, failures };
}

const total = (failures: Map<string, number>) => [...failures.values()].reduce((n, c) => n + c, 0);

const tokenInit = {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: '{"participant_name":"Bench"}',
};
const admin = {
  authorization: 'Bearer bench-admin-key-0123456789',
  'content-type': 'application/json',
};
const targets: Target[] = [
  {
    label: 'POST /token, JWT caller, a new user each request (workerd)',
    url: `${edgeUrl}/token`,
    init: tokenInit,
    users: { next: 0, perSecond: 1000 },
  },
  // Two rows that split /token's cost: without the rate limiter (backend key), and one D1 read alone.
  // A backend is never under the open-call cap (it serves many users under one key: callerKey
  // null in the ledger), so one participant identity for all its requests issues a token each time.
  {
    label: 'POST /token, backend key: no rate limiter (workerd)',
    url: `${edgeUrl}/token`,
    init: { method: 'POST', headers: admin, body: '{"participant_identity":"bench-backend"}' },
  },
  {
    label: 'GET /calls?limit=1: auth + one D1 read (workerd)',
    url: `${edgeUrl}/calls?limit=1`,
    init: { headers: admin },
  },
  { label: 'GET /healthz (workerd)', url: `${edgeUrl}/healthz` },
  {
    label: 'plain Node: JWT check, rate window, SQLite write, token',
    url: plainUrl,
    init: tokenInit,
    users: { next: 0, perSecond: 1000 },
  },
];
const results = new Map<Target, Result[]>(targets.map((t) => [t, []]));
// Warm-up: JIT, connections, D1 pages. Not measured, but a target that fails here says so now.
for (const t of targets) {
  const { failures } = await measure(t, 2);
  if (failures.size) console.warn(`${t.label}, warm-up: failed`, Object.fromEntries(failures));
}
for (const order of [targets, [...targets].reverse()])
  for (const t of order) results.get(t)!.push(await measure(t, DURATION / 2));
await mf.dispose();
plain.close();
type Numeric = 'rps' | 'p50' | 'p99';
const mean = (t: Target, k: Numeric) => results.get(t)!.reduce((s, r) => s + r[k], 0) / 2;
const [token, , , health, node] = targets;

printTable(
  'Edge throughput (bench:edge)',
  ['target', '2xx/s', 'p50 ms', 'p99 ms', 'failed'],
  targets.map((t) => {
    const failures = new Map<string, number>();
    for (const r of results.get(t)!)
      for (const [why, n] of r.failures) failures.set(why, (failures.get(why) ?? 0) + n);
    return [
      t.label,
      Math.round(mean(t, 'rps')),
      mean(t, 'p50'),
      mean(t, 'p99'),
      failedCell(
        total(failures),
        [...failures].map(([why, n]) => `${n} ${why}`),
      ),
    ];
  }),
);
console.log(
  `\n/token ÷ /healthz on workerd: ${(mean(token!, 'rps') / mean(health!, 'rps')).toFixed(2)} (target ≥ 0.50)`,
);
console.log(
  `/token on workerd ÷ the same work in plain Node: ${(mean(token!, 'rps') / mean(node!, 'rps')).toFixed(2)} (target ≥ 0.3)`,
);
console.log(
  `bundle (wrangler deploy --dry-run): ${(bundle.length / 1024).toFixed(1)} KiB, ${gzipKiB.toFixed(1)} KiB gzipped (target ≤ 100 KiB)`,
);
