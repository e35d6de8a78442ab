// The ledger at scale (issue #15): no webhook end lost to a D1 blip, 503 (never 500) when D1
// fails, a cron that keeps up with any backlog without misnaming unused tokens, sweeps and lists
// bounded by indexes (D1's own rows_read), and retention.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runBackstop } from '../../edge/call/backstop.ts';
import { meteredD1 } from '../support/edge/d1-meter.ts';
import {
  ADMIN,
  call,
  expectError,
  fakeLiveKit,
  issueToken,
  ledgerRow,
  postAgentReport,
  sendWebhook,
  signAsLiveKit,
  testEnv,
  type CallView,
  type EndCallResponse,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

const blip = () => new Error('D1_ERROR: Network connection lost.');

/** A LEDGER whose statements fail from the `from`-th on (1-based), as a D1 blip does. */
const failingFrom = (from: number) =>
  meteredD1(testEnv.LEDGER, (_sql, n) => (n >= from ? blip() : undefined));

/**
 * Inserts `count` open calls straight into the ledger. `kind`: unused tokens (never started, last
 * token expired at `at`), live overdue calls (started, deadline `at`), calls within their time,
 * or calls that ended at `at`.
 */
async function seedCalls(
  prefix: string,
  count: number,
  kind: 'unused' | 'live_overdue' | 'open' | 'ended',
  at: number,
) {
  const started =
    kind === 'live_overdue' || kind === 'open' || kind === 'ended' ? at - 60_000 : null;
  // An unused token's deadline is its expiry plus the longest call it could have started.
  const deadline = kind === 'unused' ? at + 1_800_000 : kind === 'open' ? at + 3_600_000 : at;
  const joinBy = kind === 'unused' ? at : null;
  await testEnv.LEDGER.prepare(
    `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?2)
     INSERT INTO calls (room, agent_name, end_mode, max_duration_seconds, created_at, deadline_at,
       started_at, join_by, status, ended_at, end_reason, end_source, end_strength)
     SELECT ?1 || '-' || i, 'voice-agent', 'end_for_all', 1800, ?3 - 120000 + i, ?4, ?5, ?6,
       ?7, ?8, ?9, ?10, ?11 FROM seq`,
  )
    .bind(
      prefix,
      count,
      at,
      deadline,
      started,
      joinBy,
      kind === 'ended' ? 'ended' : 'open',
      kind === 'ended' ? at : null,
      kind === 'ended' ? 'participant_left' : null,
      kind === 'ended' ? 'webhook' : null,
      kind === 'ended' ? 0 : null,
    )
    .run();
  return Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);
}

async function statusCounts(prefix: string) {
  const { results } = await testEnv.LEDGER.prepare(
    `SELECT COALESCE(end_reason, status) AS state, COUNT(*) AS n FROM calls WHERE room LIKE ?1 || '-%' GROUP BY 1`,
  )
    .bind(prefix)
    .all<{ state: string; n: number }>();
  return Object.fromEntries(results.map((r) => [r.state, r.n]));
}

describe('webhooks: an end is never lost to a D1 blip', () => {
  it('applies room_finished on LiveKit’s retry after D1 failed midway through the first delivery', async () => {
    const { room_name } = await issueToken('blip');
    const room = { name: room_name, sid: 'RM_blip' };
    await sendWebhook({ event: 'room_started', room, id: 'EV_blip_1' });
    const finished = JSON.stringify({
      event: 'room_finished',
      room,
      id: 'EV_blip_2',
      createdAt: String(Math.floor(Date.now() / 1000)),
    });
    const deliver = async (ledger?: D1Database) =>
      call<{ outcome: string }>(
        '/livekit/webhook',
        {
          method: 'POST',
          headers: {
            'content-type': 'application/webhook+json',
            Authorization: await signAsLiveKit(finished),
          },
          body: finished,
        },
        ledger ? { LEDGER: ledger } : {},
      );
    // D1 fails every statement of this delivery but the one recording the event id, if any (a
    // blip, then a lost connection).
    const first = await deliver(
      meteredD1(testEnv.LEDGER, (sql) =>
        /^INSERT INTO webhook_events/i.test(sql) ? undefined : blip(),
      ).db,
    );
    expect(first.status).not.toBe(200);
    expect((await ledgerRow(room_name))!.status).toBe('open');
    // LiveKit retries the same event: it is applied, not taken for a duplicate.
    const retry = await deliver();
    expect(retry.status).toBe(200);
    expect(await ledgerRow(room_name)).toMatchObject({ status: 'ended', end_source: 'webhook' });
    expectError(first, 503, 'ledger_unavailable');
    expect(first.headers.get('Retry-After')).toBe('5');
  });

  it('applies nothing of a webhook whose delivery failed, and all of it on the retry', async () => {
    const { room_name } = await issueToken('blip-join');
    const event = {
      event: 'participant_left',
      room: { name: room_name, sid: 'RM_bj' },
      participant: {
        identity: 'blip-join',
        kind: 'STANDARD',
        disconnectReason: 'CLIENT_INITIATED',
      },
      id: 'EV_bj',
    };
    for (let from = 1; from <= 3; from++) {
      const body = JSON.stringify({ createdAt: String(Math.floor(Date.now() / 1000)), ...event });
      const res = await call(
        '/livekit/webhook',
        {
          method: 'POST',
          headers: {
            'content-type': 'application/webhook+json',
            Authorization: await signAsLiveKit(body),
          },
          body,
        },
        { LEDGER: failingFrom(from).db },
      );
      if (res.status === 200) break;
      expectError(res, 503, 'ledger_unavailable');
    }
    expect((await sendWebhook(event)).status).toBe(200);
    await sendWebhook({ event: 'room_finished', room: event.room, id: 'EV_bj_end' });
    expect((await ledgerRow(room_name))!.end_reason).toBe('participant_left');
  });
});

describe('every route answers a D1 failure with 503 ledger_unavailable and Retry-After, never 500', () => {
  it.each([
    ['POST /calls/:room/report', 'report'],
    ['GET /calls/:room', 'view'],
    ['GET /calls', 'list'],
    ['POST /calls/:room/end', 'end'],
    ['POST /calls/:room/admit', 'admit'],
    ['POST /calls/:room/dispatch', 'dispatch'],
    ['POST /livekit/webhook', 'webhook'],
  ])('%s', async (_name, what) => {
    const { room_name } = await issueToken(`d1-down-${what}`);
    fakeLiveKit({ ListRooms: () => Response.json({ rooms: [{ name: room_name }] }) });
    const down = { LEDGER: failingFrom(1).db };
    let res;
    if (what === 'report') {
      const body = JSON.stringify({ room: room_name });
      void body;
      // postAgentReport builds a valid signed report; the failing ledger is passed per request.
      const spy = vi.spyOn(testEnv.LEDGER, 'prepare').mockImplementation(() => {
        throw blip();
      });
      const batch = vi.spyOn(testEnv.LEDGER, 'batch').mockImplementation(async () => {
        throw blip();
      });
      res = await postAgentReport(room_name);
      spy.mockRestore();
      batch.mockRestore();
    } else if (what === 'view') res = await call(`/calls/${room_name}`, { headers: ADMIN }, down);
    else if (what === 'list') res = await call('/calls?status=open', { headers: ADMIN }, down);
    else if (what === 'end')
      res = await call(
        `/calls/${room_name}/end`,
        { headers: ADMIN, json: { mode: 'end_for_all' } },
        down,
      );
    else if (what === 'dispatch')
      res = await call(`/calls/${room_name}/dispatch`, { headers: ADMIN, json: {} }, down);
    else if (what === 'admit') {
      const body = JSON.stringify({ room: room_name, room_sid: 'RM_1', job_id: 'AJ_1' });
      res = await call(
        `/calls/${room_name}/admit`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', Authorization: await signAsLiveKit(body) },
          body,
        },
        down,
      );
    } else {
      const body = JSON.stringify({
        event: 'room_started',
        room: { name: room_name, sid: 'RM_d' },
        id: 'EV_d',
        createdAt: String(Math.floor(Date.now() / 1000)),
      });
      res = await call(
        '/livekit/webhook',
        {
          method: 'POST',
          headers: {
            'content-type': 'application/webhook+json',
            Authorization: await signAsLiveKit(body),
          },
          body,
        },
        down,
      );
    }
    expectError(res, 503, 'ledger_unavailable');
    expect(res.headers.get('Retry-After')).toBe('5');
  });

  it('a ledger that hangs is a 503 too, after the ledger timeout', async () => {
    const { room_name } = await issueToken('d1-hangs');
    const res = await call(
      `/calls/${room_name}`,
      { headers: ADMIN },
      {
        LEDGER: meteredD1(testEnv.LEDGER, () => 'hang').db,
      },
    );
    expectError(res, 503, 'ledger_unavailable');
  }, 10_000);

  it('POST /calls/:room/end: the room was deleted but the ledger write failed; the retry records api_end_call', async () => {
    const { room_name } = await issueToken('end-retry');
    let deleted = false;
    const lk = fakeLiveKit({
      DeleteRoom: () => {
        if (deleted)
          return Response.json(
            { code: 'not_found', msg: 'requested room does not exist' },
            { status: 404 },
          );
        deleted = true;
        return Response.json({});
      },
    });
    // Reads succeed, the write fails: the room is gone, the ledger does not know yet.
    const writesFail = meteredD1(testEnv.LEDGER, (sql) =>
      /^UPDATE calls/i.test(sql) ? blip() : undefined,
    );
    const first = await call(
      `/calls/${room_name}/end`,
      { headers: ADMIN, json: { mode: 'end_for_all', reason: 'hung up' } },
      { LEDGER: writesFail.db },
    );
    expectError(first, 503, 'ledger_unavailable');
    expect(lk.bodiesOf('DeleteRoom')).toHaveLength(1);
    // LiveKit's room_finished for the deleted room arrives before the retry: an inferred end.
    await sendWebhook({
      event: 'room_finished',
      room: { name: room_name, sid: 'RM_er' },
      id: 'EV_er',
    });
    const retry = await call<EndCallResponse>(`/calls/${room_name}/end`, {
      headers: ADMIN,
      json: { mode: 'end_for_all', reason: 'hung up' },
    });
    expect(retry.status).toBe(200);
    expect(retry.data.already_ended).toBe(false);
    expect(await ledgerRow(room_name)).toMatchObject({
      status: 'ended',
      end_reason: 'api_end_call',
      end_source: 'api',
      end_note: 'hung up',
    });
  });
});

describe('the cron keeps up with any backlog', () => {
  it('120 unused tokens and one live call whose agent died: the live call is closed as max_duration in the first run, no unused token is', async () => {
    const now = Date.now();
    // Tokens fetched on page loads 45 minutes ago and never used: past their join-by and their deadline.
    const unused = await seedCalls('unused120', 120, 'unused', now - 45 * 60_000);
    const [live] = await seedCalls('live1', 1, 'live_overdue', now - 10 * 60_000);
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    await runBackstop(testEnv, now);
    expect(await ledgerRow(live!)).toMatchObject({ status: 'ended', end_reason: 'max_duration' });
    expect(lk.bodiesOf('DeleteRoom').map((b) => b.room)).toEqual([live]);
    const states = await statusCounts('unused120');
    expect(states.max_duration).toBeUndefined();
    expect(states.not_joined).toBe(unused.length);
  });

  it('a backlog of 3,000 unused tokens and 40 live overdue calls: every live call closes in the first run, the backlog within 2 runs', async () => {
    const now = Date.now();
    await seedCalls('backlog', 3_000, 'unused', now - 45 * 60_000);
    const live = await seedCalls('dead-agents', 40, 'live_overdue', now - 10 * 60_000);
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    await runBackstop(testEnv, now);
    expect(await statusCounts('dead-agents')).toEqual({ max_duration: 40 });
    expect(new Set(lk.bodiesOf('DeleteRoom').map((b) => b.room))).toEqual(new Set(live));
    await runBackstop(testEnv, now + 60_000);
    expect(await statusCounts('backlog')).toEqual({ not_joined: 3_000 });
    expect(lk.bodiesOf('DeleteRoom')).toHaveLength(40);
  });

  it('two runs that overlap (a slow LiveKit) never process one call twice', async () => {
    const now = Date.now();
    const live = await seedCalls('overlap', 6, 'live_overdue', now - 10 * 60_000);
    // LiveKit answers each DeleteRoom after 300 ms: the second run starts while the first waits.
    const deleted: string[] = [];
    vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
      const req = new Request(input, init);
      if (req.url.endsWith('/DeleteRoom')) {
        deleted.push(((await req.json()) as { room: string }).room);
        await new Promise((r) => setTimeout(r, 300));
      }
      return Response.json(req.url.endsWith('/ListRooms') ? { rooms: [] } : {});
    });
    const first = runBackstop(testEnv, now);
    await new Promise((r) => setTimeout(r, 50));
    const second = runBackstop(testEnv, now + 1_000);
    const [a, b] = await Promise.all([first, second]);
    expect([...a.ended, ...b.ended].sort()).toEqual([...live].sort());
    expect(deleted.sort()).toEqual([...live].sort());
  });

  it('the sweep is bounded by indexes: 2,000 open calls in time cost a few rows read, not 2,000', async () => {
    const now = Date.now();
    await seedCalls('in-time', 2_000, 'open', now);
    fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    const meter = meteredD1(testEnv.LEDGER);
    await runBackstop({ ...testEnv, LEDGER: meter.db }, now);
    expect(meter.counts.rowsRead).toBeLessThan(50);
  });

  it('GET /calls?status=… reads about a page of rows, not the history', async () => {
    const now = Date.now();
    await seedCalls('history', 2_000, 'ended', now - 3_600_000);
    await seedCalls('open-now', 300, 'open', now);
    for (const status of ['open', 'ended', 'not_joined']) {
      const meter = meteredD1(testEnv.LEDGER);
      const res = await call<{ calls: CallView[] }>(
        `/calls?status=${status}&limit=20`,
        { headers: ADMIN },
        {
          LEDGER: meter.db,
        },
      );
      expect(res.status).toBe(200);
      expect(meter.counts.rowsRead, status).toBeLessThan(60);
    }
  });
});

describe('retention (RETENTION_*_DAYS)', () => {
  it('deletes ended calls and reports past their days in bounded batches, and keeps the rest', async () => {
    const now = Date.now();
    const day = 86_400_000;
    await seedCalls('ancient', 2_500, 'ended', now - 100 * day);
    const [recent] = await seedCalls('recent', 1, 'ended', now - day);
    await testEnv.LEDGER.prepare(
      `INSERT INTO call_reports (call_id, room, received_at, body) VALUES
         ('old-report', ?1, ?2, '{}'), ('new-report', ?1, ?3, '{}')`,
    )
      .bind(recent, now - 40 * day, now - day)
      .run();
    fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    const budget = {
      ...(await import('../../edge/call/backstop.ts')).BACKSTOP_BUDGET,
      pruneBatch: 1_000,
      pruneRounds: 2,
    };
    await runBackstop(testEnv, now, budget);
    expect(await statusCounts('ancient')).toEqual({ participant_left: 500 });
    await runBackstop(testEnv, now, budget);
    expect(await statusCounts('ancient')).toEqual({});
    expect(await ledgerRow(recent!)).not.toBeNull();
    const { results } = await testEnv.LEDGER.prepare(
      'SELECT call_id FROM call_reports WHERE room = ?',
    )
      .bind(recent)
      .all<{ call_id: string }>();
    expect(results.map((r) => r.call_id)).toEqual(['new-report']);
  });
});
