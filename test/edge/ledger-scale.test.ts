// The ledger at scale (issue #15): no webhook end lost to a D1 blip, 503 (never 500) when D1
// fails, a cron that keeps up with any backlog without misnaming unused tokens, sweeps and lists
// bounded by indexes (D1's own rows_read), and retention.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runBackstop } from '../../edge/call/backstop.ts';
import { meteredD1 } from '../support/edge/d1-meter.ts';
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { callReportFor } from '../support/call-report-fixture.ts';
import {
  ADMIN,
  archiveRow,
  callObjectOf,
  failingObjects,
  objectArchive,
  UNREACHABLE_OBJECTS,
  call,
  expectError,
  fakeLiveKit,
  issueToken,
  callRow,
  sendWebhook,
  signAsLiveKit,
  testEnv,
  type CallView,
  type EndCallResponse,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

const alarmOf = (room: string) =>
  runInDurableObject(callObjectOf(room), (_o, state) => state.storage.getAlarm());

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
  it('room_finished while D1 fails: answered (the call’s object holds the end), and the object writes the archive once D1 is back', async () => {
    const { room_name } = await issueToken('blip');
    const room = { name: room_name, sid: 'RM_blip' };
    await sendWebhook({ event: 'room_started', room, id: 'EV_blip_1' });
    const restore = await objectArchive(room_name, failingFrom(1).db);
    const finished = await sendWebhook({ event: 'room_finished', room, id: 'EV_blip_2' });
    expect([finished.status, finished.data.outcome]).toEqual([200, 'applied']);
    expect((await callRow(room_name))!.status).toBe('ended');
    expect((await archiveRow(room_name))!.status).toBe('open');
    // The object tries again soon (1 s), not at the call's retention.
    const retryAt = await alarmOf(room_name);
    expect(retryAt! - Date.now()).toBeLessThanOrEqual(1_000);
    expect(await runDurableObjectAlarm(callObjectOf(room_name))).toBe(true); // still down
    expect((await archiveRow(room_name))!.status).toBe('open');
    await restore();
    expect(await runDurableObjectAlarm(callObjectOf(room_name))).toBe(true);
    expect(await archiveRow(room_name)).toMatchObject({ status: 'ended', end_source: 'webhook' });
  });

  it('applies nothing of a webhook whose object could not be reached, and all of it on the retry', async () => {
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
    const refused = await sendWebhook(event, signAsLiveKit, { CALLS: UNREACHABLE_OBJECTS });
    expectError(refused, 503, 'ledger_unavailable');
    expect((await sendWebhook(event)).status).toBe(200);
    await sendWebhook({ event: 'room_finished', room: event.room, id: 'EV_bj_end' });
    expect((await callRow(room_name))!.end_reason).toBe('participant_left');
  });
});

describe('every route answers a ledger failure (D1, or the call’s object) with 503 ledger_unavailable and Retry-After, never 500', () => {
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
    // The archive for the routes that read or write it; the call's object for the others.
    const down =
      what === 'list' || what === 'dispatch'
        ? { LEDGER: failingFrom(1).db }
        : { CALLS: UNREACHABLE_OBJECTS };
    let res;
    if (what === 'report') {
      const body = JSON.stringify(callReportFor(room_name));
      res = await call(
        `/calls/${room_name}/report`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', Authorization: await signAsLiveKit(body) },
          body,
        },
        down,
      );
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
    } else
      res = await sendWebhook(
        { event: 'room_started', room: { name: room_name, sid: 'RM_d' }, id: 'EV_d' },
        signAsLiveKit,
        down,
      );
    expectError(res, 503, 'ledger_unavailable');
    expect(res.headers.get('Retry-After')).toBe('5');
  });

  it('a call’s object that hangs is a 503 too, after the ledger timeout', async () => {
    const { room_name } = await issueToken('object-hangs');
    const hanging = {
      idFromName: (name: string) => testEnv.CALLS.idFromName(name),
      get: () => new Proxy({}, { get: () => () => new Promise(() => {}) }),
    };
    const res = await call(`/calls/${room_name}`, { headers: ADMIN }, { CALLS: hanging });
    expectError(res, 503, 'ledger_unavailable');
  }, 10_000);

  it('a call only in the archive (open before the object kept calls) is read from D1 on first contact: D1 failing then is a 503', async () => {
    const [room] = await seedCalls('archive-only', 1, 'open', Date.now());
    const object = callObjectOf(room!);
    await runInDurableObject(object, (instance) => {
      const o = instance as unknown as { env: Env };
      o.env = { ...o.env, LEDGER: failingFrom(1).db };
    });
    const failed = await call(`/calls/${room}`, { headers: ADMIN });
    expectError(failed, 503, 'ledger_unavailable');
    await runInDurableObject(object, (instance) => {
      const o = instance as unknown as { env: Env };
      o.env = { ...o.env, LEDGER: testEnv.LEDGER };
    });
    const read = await call<CallView>(`/calls/${room}`, { headers: ADMIN });
    expect(read.status).toBe(200);
    expect(read.data.status).toBe('open');
  });

  it('POST /calls/:room/end: the room was deleted but the object could not record the end; the retry records api_end_call', async () => {
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
    // Reads succeed, the end fails: the room is gone, the call's object does not know yet.
    const first = await call(
      `/calls/${room_name}/end`,
      { headers: ADMIN, json: { mode: 'end_for_all', reason: 'hung up' } },
      { CALLS: failingObjects(['row']) },
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
    const ended = {
      status: 'ended',
      end_reason: 'api_end_call',
      end_source: 'api',
      end_note: 'hung up',
    };
    expect(await callRow(room_name)).toMatchObject(ended);
    expect(await archiveRow(room_name)).toMatchObject(ended);
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
    expect(await callRow(live!)).toMatchObject({ status: 'ended', end_reason: 'max_duration' });
    expect(lk.bodiesOf('DeleteRoom').map((b) => b.room)).toEqual([live]);
    const states = await statusCounts('unused120');
    expect(states.max_duration).toBeUndefined();
    expect(states.not_joined).toBe(unused.length);
  });

  it('a backlog of 1,200 unused tokens and 40 live overdue calls: every live call closes in the first run, the backlog within 3 runs (500 a run)', async () => {
    const now = Date.now();
    await seedCalls('backlog', 1_200, 'unused', now - 45 * 60_000);
    const live = await seedCalls('dead-agents', 40, 'live_overdue', now - 10 * 60_000);
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    await runBackstop(testEnv, now);
    expect(await statusCounts('dead-agents')).toEqual({ max_duration: 40 });
    expect(new Set(lk.bodiesOf('DeleteRoom').map((b) => b.room))).toEqual(new Set(live));
    await runBackstop(testEnv, now + 60_000);
    await runBackstop(testEnv, now + 120_000);
    expect(await statusCounts('backlog')).toEqual({ not_joined: 1_200 });
    expect(lk.bodiesOf('DeleteRoom')).toHaveLength(40);
  }, 60_000);

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
    expect(await callRow(recent!)).not.toBeNull();
    const { results } = await testEnv.LEDGER.prepare(
      'SELECT call_id FROM call_reports WHERE room = ?',
    )
      .bind(recent)
      .all<{ call_id: string }>();
    expect(results.map((r) => r.call_id)).toEqual(['new-report']);
  });
});
