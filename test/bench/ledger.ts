// npm run bench:ledger: what one call costs the ledger (D1), measured through the edge in workerd.
// Whole call lives: POST /token, the webhooks the real LiveKit server sends for one spoken call
// (the sequence below is the one livekit-server v1.13.5 sent in an e2e run, read from its
// livekit.log: "sent webhook" lines for a caller speaking to the agent, then hanging up), the
// agent's admission request and its report, then cron runs. The edge runs unchanged in Miniflare
// (the bundle of test/support/edge/metered-worker.ts), its D1 binding wrapped to count statements,
// round trips and D1's own rows_read/rows_written, and the call objects' requests and the rows
// their storage wrote. LiveKit's Twirp API is answered by a stub (the
// cron asks it; no room is live). Prints per-call costs and the calls/s one D1 database carries at
// Cloudflare's 1 ms per query (1,000 queries/s, one at a time).
import { build } from 'esbuild';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';
import { signBody } from '../../wire-contract/index.ts';
import { callReportFor } from '../support/call-report-fixture.ts';
import { printTable } from './table.ts';

const CALLS = Number(process.env.BENCH_CALLS ?? 200);
const KEY = 'devkey';
const SECRET = 'secret';
const APP_KEY = 'bench-app-key-0123456789';

type Counts = {
  statements: number;
  roundTrips: number;
  rowsRead: number;
  rowsWritten: number;
  /** The call objects': requests (RPC calls and alarm runs), storage writes. */
  requests: number;
  storageWrites: number;
};

const bundle = await build({
  entryPoints: ['test/support/edge/metered-worker.ts'],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  conditions: ['workerd', 'worker', 'browser', 'import'],
  mainFields: ['module', 'main'],
  external: ['cloudflare:*'],
  write: false,
  logLevel: 'error',
});

const mf = new Miniflare(
  convertV4MiniflareOptions({
    name: 'edge',
    modules: true,
    script: bundle.outputFiles[0]!.text,
    compatibilityDate: '2026-11-01',
    d1Databases: ['LEDGER'],
    durableObjects: { CALLS: { className: 'Call', useSQLite: true } },
    ratelimits: {
      RATE_LIMIT_IDENTITY: { namespace_id: '1001', simple: { limit: 1e9, period: 60 } },
      RATE_LIMIT_IP: { namespace_id: '1002', simple: { limit: 1e9, period: 60 } },
    },
    bindings: {
      LIVEKIT_URL: 'ws://127.0.0.1:7880',
      LIVEKIT_API_KEY: KEY,
      LIVEKIT_API_SECRET: SECRET,
      ADMIN_API_KEY: 'bench-admin-key-0123456789',
      APP_API_KEY: APP_KEY,
      AGENT_NAME: 'voice-agent',
      LOG_LEVEL: 'warn',
      // The agent-arrival watch (edge/call/agent-arrival.ts) is not the ledger's: measured apart below.
      AGENT_WAIT_SECONDS: process.env.BENCH_AGENT_WAIT ?? '0',
    },
    // LiveKit's room service, as the cron sees it: no room is live.
    outboundService: async (req: Request) => {
      const method = new URL(req.url).pathname.split('/').pop();
      if (method === 'ListParticipants')
        return Response.json({ participants: [{ identity: 'agent', kind: 'AGENT' }] });
      return Response.json(method === 'ListRooms' ? { rooms: [] } : {});
    },
  }),
);
await mf.ready;
const ledger = await mf.getD1Database('LEDGER');
for (const file of readdirSync('edge/migrations').sort())
  for (const stmt of readFileSync(join('edge/migrations', file), 'utf8')
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter(Boolean))
    await ledger.prepare(stmt).run();

const edge = 'http://edge.bench';
async function request(path: string, init: RequestInit = {}) {
  const res = await mf.dispatchFetch(`${edge}${path}`, init as never);
  const text = await res.text();
  if (res.status >= 400) throw new Error(`${path}: ${res.status} ${text}`);
  return text ? (JSON.parse(text) as unknown) : null;
}
const meter = async () => ((await request('/__meter')) as { counts: Counts }).counts;

const phases = new Map<string, Counts>();
const zero = (): Counts => ({
  statements: 0,
  roundTrips: 0,
  rowsRead: 0,
  rowsWritten: 0,
  requests: 0,
  storageWrites: 0,
});
/** Runs `fn` and adds what it cost the ledger to `phase`. */
async function measured(phase: string, fn: () => Promise<unknown>) {
  const before = await meter();
  await fn();
  const after = await meter();
  const sum = phases.get(phase) ?? zero();
  for (const k of Object.keys(sum) as (keyof Counts)[]) sum[k] += after[k] - before[k];
  phases.set(phase, sum);
}

async function signed(path: string, payload: unknown, contentType = 'application/json') {
  const body = JSON.stringify(payload);
  return request(path, {
    method: 'POST',
    headers: { 'content-type': contentType, authorization: await signBody(body, KEY, SECRET) },
    body,
  });
}

const CALLER = { kind: 'STANDARD' };
const AGENT = { kind: 'AGENT' };
/** One call's webhooks as livekit-server sent them, with when the agent asks and reports. */
const SCRIPT = [
  ['room_started'],
  ['participant_joined', 'caller'],
  ['track_published', 'caller'],
  ['admit'],
  ['participant_joined', 'agent'],
  ['track_published', 'agent'],
  ['track_unpublished', 'caller'],
  ['participant_left', 'caller'],
  ['track_unpublished', 'agent'],
  ['participant_left', 'agent'],
  ['report'],
  ['room_finished'],
] as const;

/** What LiveKit makes the room's metadata when a join with this token creates it. */
function roomMetadataOf(jwt: string): string {
  const payload = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as {
    roomConfig?: { metadata?: string };
  };
  return payload.roomConfig?.metadata ?? '';
}

async function callLife(i: number) {
  let room = '';
  let metadata = '';
  await measured('token', async () => {
    const res = (await request('/token', {
      method: 'POST',
      headers: { authorization: `Bearer ${APP_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ participant_identity: `caller-${i}` }),
    })) as { room_name: string; participant_token: string };
    room = res.room_name;
    metadata = roomMetadataOf(res.participant_token);
  });
  const sid = `RM_${i}`;
  const t0 = Math.floor(Date.now() / 1000);
  // The room as LiveKit reports it: its metadata from the token's room configuration.
  const lkRoom = { name: room, sid, creationTime: String(t0), metadata };
  let n = 0;
  for (const [what, who] of SCRIPT) {
    if (what === 'admit') {
      await measured('admit (agent)', () =>
        signed(`/calls/${room}/admit`, { room, room_sid: sid, job_id: `AJ_${i}` }),
      );
      continue;
    }
    if (what === 'report') {
      const now = Date.now();
      await measured('report (agent)', () =>
        signed(
          `/calls/${room}/report`,
          callReportFor(room, {
            room_sid: sid,
            job_id: `AJ_${i}`,
            end_reason: 'participant_left',
            ended_by: 'user',
            started_at: new Date(now - 30_000).toISOString(),
            ended_at: new Date(now).toISOString(),
            transcript: [{ role: 'assistant', text: 'Hello!', at: new Date(now).toISOString() }],
            usage: {
              llm_prompt_tokens: 1,
              llm_completion_tokens: 1,
              tts_characters: 6,
              stt_seconds: 1,
            },
          }),
        ),
      );
      continue;
    }
    const participant =
      who === 'caller'
        ? { identity: `caller-${i}`, sid: `PA_c${i}`, ...CALLER, joinedAt: String(t0) }
        : who === 'agent'
          ? { identity: `agent-AJ_${i}`, sid: `PA_a${i}`, ...AGENT, joinedAt: String(t0 + 1) }
          : undefined;
    const event = {
      id: `EV_${i}_${n++}`,
      event: what,
      createdAt: String(t0 + n),
      room: lkRoom,
      ...(participant && {
        participant: {
          ...participant,
          ...(what === 'participant_left' && { disconnectReason: 'CLIENT_INITIATED' }),
        },
      }),
      ...(what.startsWith('track_') && { track: { sid: `TR_${i}_${n}`, type: 'AUDIO' } }),
    };
    const phase = what.startsWith('track_') ? 'webhooks: track_*' : `webhook: ${what}`;
    await measured(phase, () => signed('/livekit/webhook', event, 'application/webhook+json'));
  }
  // The call's object's next alarm (for an ended call, its retention, which finds nothing due
  // yet), run now: what a wake-up costs.
  await measured('call object: its next alarm, now', () =>
    request(`/__ring/${room}`, { method: 'POST' }),
  );
}

const started = performance.now();
for (let i = 0; i < CALLS; i++) await callLife(i);
const wall = performance.now() - started;

// The cron, once a minute: at the ceiling, a minute brings thousands of new calls, so its cost
// per run is shared by all of them; measured here with every call ended (the usual state).
const worker = (await mf.getWorker()) as unknown as {
  scheduled(options: { cron: string; scheduledTime: Date }): Promise<unknown>;
};
const CRON_RUNS = 5;
for (let r = 0; r < CRON_RUNS; r++)
  await measured('cron (per run)', () =>
    worker.scheduled({ cron: '* * * * *', scheduledTime: new Date() }),
  );

const state = (await ledger
  .prepare("SELECT COUNT(*) AS n, SUM(status = 'ended') AS ended FROM calls")
  .first()) as { n: number; ended: number };
await mf.dispose();
if (state.ended !== CALLS) throw new Error(`expected ${CALLS} ended calls, got ${state.ended}`);

const per = (c: Counts, div: number) => [
  (c.statements / div).toFixed(2),
  (c.roundTrips / div).toFixed(2),
  (c.rowsRead / div).toFixed(1),
  (c.rowsWritten / div).toFixed(1),
  (c.requests / div).toFixed(2),
  (c.storageWrites / div).toFixed(2),
];
const total = zero();
const rows: (string | number)[][] = [];
for (const [phase, c] of phases) {
  if (phase.startsWith('cron')) continue;
  for (const k of Object.keys(total) as (keyof Counts)[]) total[k] += c[k];
  rows.push([phase, ...per(c, CALLS)]);
}
rows.push(['**per call**', ...per(total, CALLS).map((v) => `**${v}**`)]);
const cron = phases.get('cron (per run)')!;
rows.push(['cron (per run, not per call)', ...per(cron, CRON_RUNS)]);
printTable(
  `Ledger cost per call (${CALLS} call lives)`,
  [
    'step',
    'D1 statements',
    'D1 round trips',
    'D1 rows read',
    'D1 rows written',
    'object requests',
    'object storage writes',
  ],
  rows,
);
/**
 * Cloudflare's published prices past the Workers Paid plan's included amounts, as read on
 * 2026-12-06: D1 (developers.cloudflare.com/d1/platform/pricing/) and Durable Objects
 * (developers.cloudflare.com/durable-objects/platform/pricing/; requests include RPC calls and
 * alarm runs; a SQLite-backed object's key-value writes are rows written). USD per million.
 */
const PRICE_PER_MILLION = {
  d1RowRead: 0.001,
  d1RowWritten: 1.0,
  objectRequest: 0.15,
  objectRowWritten: 1.0,
};
const usd = (count: number, perMillion: number) => (count / CALLS) * perMillion;
const d1Cost =
  usd(total.rowsRead, PRICE_PER_MILLION.d1RowRead) +
  usd(total.rowsWritten, PRICE_PER_MILLION.d1RowWritten);
const objectCost =
  usd(total.requests, PRICE_PER_MILLION.objectRequest) +
  usd(total.storageWrites, PRICE_PER_MILLION.objectRowWritten);
console.log(
  `\nA million calls at Cloudflare's published prices (2026-12-06, past the included amounts): ` +
    `D1 $${d1Cost.toFixed(2)} (rows read and written), call objects $${objectCost.toFixed(2)} ` +
    `(requests and storage writes; their duration, billed per GB-s while one runs, is not measured ` +
    `here: a local workerd's time is not Cloudflare's).`,
);
const perCall = total.statements / CALLS;
console.log(
  `\nOne D1 database at 1 ms per query (1,000 queries/s): ${Math.floor(1000 / perCall)} new calls/s ` +
    `(${perCall.toFixed(2)} statements per call). ${CALLS} call lives took ${(wall / 1000).toFixed(1)} s here.`,
);
