// The call's Durable Object as the home of its live state (issue #27): the archive (D1) written
// when the call opens and when it ends, calls from before the object kept them taken over on
// first contact, and the object's schema kept in step with the archive's migrations.
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { callFactsMetadata, callFromRoomMetadata } from '../../edge/call/call-facts.ts';
import { sealDispatchMetadata } from '../../wire-contract/index.ts';
import { CALL_TABLES } from '../../edge/call/call-schema.ts';
import { configFrom } from '../../edge/config.ts';
import { callReportFor } from '../support/call-report-fixture.ts';
import { meteredD1 } from '../support/edge/d1-meter.ts';
import {
  ADMIN,
  APP,
  archiveRow,
  atArchive,
  askAdmission,
  call,
  callLedger,
  callObjectOf,
  callRow,
  fakeLiveKit,
  issueToken,
  objectArchive,
  roomMetadataOf,
  signAsLiveKit,
  sendWebhook,
  testEnv,
  type CallView,
  type TokenResponse,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

const alarmOf = (room: string) =>
  runInDurableObject(callObjectOf(room), (_o, state) => state.storage.getAlarm());

/**
 * One spoken call's webhooks, as livekit-server sent them (test/bench/ledger.ts has the source),
 * with the room's metadata when a token from /token created the room.
 */
function callEvents(room: string, caller: string, metadata = '') {
  const r = { name: room, sid: `RM_${room}`, metadata };
  const t0 = Math.floor(Date.now() / 1000);
  const left = { disconnectReason: 'CLIENT_INITIATED' };
  return {
    started: { event: 'room_started', room: r, createdAt: String(t0) },
    joined: [
      {
        event: 'participant_joined',
        room: r,
        participant: { identity: caller, kind: 'STANDARD' },
        createdAt: String(t0),
      },
      {
        event: 'participant_joined',
        room: r,
        participant: { identity: 'agent-AJ_1', kind: 'AGENT' },
        createdAt: String(t0 + 1),
      },
    ],
    left: [
      {
        event: 'participant_left',
        room: r,
        participant: { identity: caller, kind: 'STANDARD', ...left },
        createdAt: String(t0 + 5),
      },
      {
        event: 'participant_left',
        room: r,
        participant: { identity: 'agent-AJ_1', kind: 'AGENT', ...left },
        createdAt: String(t0 + 6),
      },
    ],
    finished: { event: 'room_finished', room: r, createdAt: String(t0 + 7) },
  };
}

describe('the call’s object holds its live state; the archive is written when it opens and when it ends', () => {
  it.each([
    {
      room: 'the token’s',
      facts: true,
      statements: 3,
      roundTrips: 2,
      why: '/token’s, the end (the object takes the call from the room’s metadata)',
    },
    {
      room: 'not the token’s (created elsewhere)',
      facts: false,
      statements: 4,
      roundTrips: 3,
      why: '/token’s, the object’s first read of the call, the end',
    },
  ])(
    'a whole call life, the room’s metadata $room, costs the archive $statements statements in $roundTrips round trips: $why',
    async ({ facts, statements, roundTrips }) => {
      const meter = meteredD1(testEnv.LEDGER);
      const room = `two-writes-${crypto.randomUUID().slice(0, 8)}`;
      const token = await call<TokenResponse>(
        '/token',
        { headers: APP, json: { room_name: room, participant_identity: 'caller' } },
        { LEDGER: meter.db },
      );
      expect(token.status).toBe(201);
      const metadata = facts ? await roomMetadataOf(token.data.participant_token) : '';
      // Every request and the object alike see the metered archive.
      const restore = await objectArchive(room, meter.db);
      const metered = { LEDGER: meter.db };
      const webhook = (e: Record<string, unknown>) => sendWebhook(e, signAsLiveKit, metered);
      const events = callEvents(room, 'caller', metadata);
      await webhook(events.started);
      await webhook(events.joined[0]!);
      const admission = await askAdmission(
        room,
        { room_sid: `RM_${room}` },
        { overrides: metered },
      );
      expect(admission.data.admit).toBe(true);
      await webhook(events.joined[1]!);
      for (const e of events.left) await webhook(e);
      const report = JSON.stringify(callReportFor(room, { end_reason: 'participant_left' }));
      const accepted = await call(
        `/calls/${room}/report`,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            Authorization: await signAsLiveKit(report),
          },
          body: report,
        },
        metered,
      );
      expect(accepted.status).toBe(201);
      await webhook(events.finished);
      await restore();
      expect(meter.counts.statements).toBe(statements);
      expect(meter.counts.roundTrips).toBe(roundTrips);
      // And the archive has the call as it ended.
      const live = (await callRow(room))!;
      expect(await archiveRow(room)).toMatchObject({
        status: 'ended',
        end_reason: 'participant_left',
        end_source: 'agent',
        started_at: live.started_at,
        ended_at: live.ended_at,
        room_sid: `RM_${room}`,
        agent_job_id: 'AJ_1',
      });
    },
  );
});

describe('the call’s facts ride in its room’s metadata: the object’s first contact reads no archive', () => {
  /** The object's rows for `room`, as its storage holds them. */
  const objectRows = (room: string) =>
    runInDurableObject(callObjectOf(room), (_o, state) => ({
      call: state.storage.sql.exec('SELECT * FROM calls WHERE room = ?', room).one(),
      participants: state.storage.sql
        .exec('SELECT * FROM call_participants WHERE room = ? ORDER BY identity', room)
        .toArray(),
    }));

  it('the call the object takes from the facts is the call /token wrote to the archive (the archive’s own columns aside)', async () => {
    const token = await issueToken('facts-caller');
    const room = token.room_name;
    const archived = (await archiveRow(room)) as Record<string, unknown>;
    const archivedTokens = await testEnv.LEDGER.prepare(
      'SELECT * FROM call_participants WHERE room = ? ORDER BY identity',
    )
      .bind(room)
      .all();
    // A participant event changes no column of the call's row, only its participant's.
    const res = await sendWebhook({
      event: 'participant_connection_aborted',
      room: {
        name: room,
        sid: 'RM_facts',
        metadata: await roomMetadataOf(token.participant_token),
      },
      participant: { identity: 'someone-else', kind: 'STANDARD' },
    });
    expect(res.data.outcome).toBe('applied');
    const here = await objectRows(room);
    // caller_key (the open-call cap's) and sweep_until (the cron's) are the archive's alone.
    const { caller_key, sweep_until, ...rest } = archived;
    expect(caller_key).toBe('id:facts-caller');
    expect(sweep_until).toBeNull();
    expect(here.call).toMatchObject(rest);
    expect(here.call.caller_key).toBeNull();
    expect(here.participants.filter((p) => p.identity === 'facts-caller')).toEqual(
      archivedTokens.results,
    );
  });

  it('facts about another room, or metadata of another shape, are not taken: the call comes from the archive, and a room with no call stays untracked', async () => {
    const a = await issueToken('facts-a');
    const b = await issueToken('facts-b');
    const aFacts = await roomMetadataOf(a.participant_token);
    // The archive's word, changed behind the token, shows which source the object used.
    await atArchive('UPDATE calls SET max_duration_seconds = 77 WHERE room = ?', b.room_name);
    const lifted = await sendWebhook({
      event: 'room_started',
      room: { name: b.room_name, sid: 'RM_b', metadata: aFacts },
    });
    expect(lifted.data.outcome).toBe('applied');
    expect((await callRow(b.room_name))!.max_duration_seconds).toBe(77);

    const nowhere = `no-call-${crypto.randomUUID().slice(0, 8)}`;
    const res = await sendWebhook({
      event: 'room_started',
      room: { name: nowhere, sid: 'RM_n', metadata: aFacts },
    });
    expect(res.data.outcome).toBe('untracked');
    expect(await callRow(nowhere)).toBeNull();
  });

  it.each([
    ['an app’s own metadata', () => ({ topic: 'support' })],
    ['facts with a field too many', (f: Record<string, unknown>) => ({ call: { ...f, extra: 1 } })],
    [
      'a tampered dispatch',
      (f: Record<string, unknown>) => ({
        call: {
          ...f,
          dispatch: String(f.dispatch).replace(/.(?=.{10}$)/, (c) => (c === 'A' ? 'B' : 'A')),
        },
      }),
    ],
  ])('%s is not the edge’s: the call comes from the archive', async (_what, metadataFrom) => {
    const token = await issueToken('facts-shape');
    const room = token.room_name;
    const facts = (
      JSON.parse(await roomMetadataOf(token.participant_token)) as {
        call: Record<string, unknown>;
      }
    ).call;
    await atArchive('UPDATE calls SET max_duration_seconds = 66 WHERE room = ?', room);
    const res = await sendWebhook({
      event: 'room_started',
      room: { name: room, sid: 'RM_shape', metadata: JSON.stringify(metadataFrom(facts)) },
    });
    expect(res.data.outcome).toBe('applied');
    expect((await callRow(room))!.max_duration_seconds).toBe(66);
  });

  it('a room several tokens were issued for runs with the settings of the token whose join created it, and the archive ends with them', async () => {
    const room = `two-tokens-${crypto.randomUUID().slice(0, 8)}`;
    const tokenFor = async (identity: string, maxDurationSeconds: number) => {
      const res = await call<TokenResponse>('/token', {
        headers: APP,
        json: {
          room_name: room,
          participant_identity: identity,
          room_config: {
            agents: [{ metadata: JSON.stringify({ max_duration_seconds: maxDurationSeconds }) }],
          },
        },
      });
      expect(res.status).toBe(201);
      return res.data;
    };
    await tokenFor('first', 100);
    const second = await tokenFor('second', 200);
    expect((await archiveRow(room))!.max_duration_seconds).toBe(100);
    const metadata = await roomMetadataOf(second.participant_token);
    const events = callEvents(room, 'second', metadata);
    await sendWebhook(events.started);
    expect((await callRow(room))!.max_duration_seconds).toBe(200);
    await sendWebhook(events.finished);
    expect(await archiveRow(room)).toMatchObject({ status: 'ended', max_duration_seconds: 200 });
  });

  it('side by side at the first contact, a failed take fails every request that waited on it, with one try of the archive', async () => {
    const token = await issueToken('failed-take');
    const room = token.room_name;
    let reads = 0;
    const down = {
      prepare: () => ({
        bind: () => ({
          first: async () => {
            reads++;
            await new Promise((r) => setTimeout(r, 20));
            throw new Error('D1_ERROR: the archive is down');
          },
        }),
      }),
    } as unknown as D1Database;
    const restore = await objectArchive(room, down);
    const events = callEvents(room, 'failed-take');
    const answers = await Promise.all(
      [events.started, events.joined[0]!].map((e) => sendWebhook(e, signAsLiveKit)),
    );
    await restore();
    expect(answers.map((a) => a.status)).toEqual([503, 503]);
    expect(reads).toBe(1);
    // LiveKit's retries then apply both.
    for (const e of [events.started, events.joined[0]!])
      expect((await sendWebhook(e)).data.outcome).toBe('applied');
    expect((await callRow(room))!.started_at).not.toBeNull();
  });

  it('webhooks side by side at the first contact: the call is taken once, with one read of the archive', async () => {
    const token = await issueToken('side-by-side');
    const room = token.room_name;
    const meter = meteredD1(testEnv.LEDGER);
    const restore = await objectArchive(room, meter.db);
    // No metadata: the room was made elsewhere, so the object must read the archive.
    const events = callEvents(room, 'side-by-side');
    const answers = await Promise.all(
      [events.started, events.joined[0]!].map((e) => sendWebhook(e, signAsLiveKit)),
    );
    await restore();
    expect(answers.map((a) => a.data.outcome)).toEqual(['applied', 'applied']);
    expect(meter.counts.statements).toBe(1);
    expect((await callRow(room))!.started_at).not.toBeNull();
  });

  it('facts whose join window has passed are not taken: a call the cron closed as never joined stays ended, and its late room is a revival', async () => {
    const token = await issueToken('facts-late');
    const room = token.room_name;
    const graceMs = configFrom(testEnv).BACKSTOP_GRACE_SECONDS * 1000;
    const now = Date.now();
    const call = {
      room,
      identity: 'facts-late',
      agentName: testEnv.AGENT_NAME,
      endMode: 'end_for_all' as const,
      maxDurationSeconds: 60,
      now: now - 3_600_000,
      joinBy: now - graceMs - 1_000,
      deadlineAt: now - graceMs - 1_000 + 60_000,
    };
    const dispatch = await sealDispatchMetadata(
      {
        caller_identity: call.identity,
        issued_at: new Date(call.now).toISOString(),
        max_duration_seconds: call.maxDurationSeconds,
        end_mode: call.endMode,
      },
      room,
      testEnv.LIVEKIT_API_SECRET,
    );
    const late = callFactsMetadata(call, dispatch);
    // The same facts in their join window would be taken (the guard, not the facts, refuses).
    expect(await callFromRoomMetadata(configFrom(testEnv), room, late)).toEqual(call);
    await atArchive(
      `UPDATE calls SET status = 'ended', end_reason = 'not_joined', end_source = 'cron',
         end_strength = 1, ended_at = ? WHERE room = ?`,
      now - 500,
      room,
    );
    const lk = fakeLiveKit();
    const res = await sendWebhook({
      event: 'room_started',
      room: { name: room, sid: 'RM_late', metadata: late },
    });
    expect(res.data.outcome).toBe('revival');
    expect(lk.bodiesOf('DeleteRoom')).toEqual([{ room }]);
    expect(await callRow(room)).toMatchObject({ status: 'ended', end_reason: 'not_joined' });
  });
});

describe('a call from before the object kept calls (only in the archive) is taken over on first contact', () => {
  /** An open call as the previous Worker left it: its row and its caller's token, in D1 only. */
  async function archivedOpenCall(room: string, caller: string) {
    const now = Date.now();
    await testEnv.LEDGER.batch([
      testEnv.LEDGER.prepare(
        `INSERT INTO calls (room, agent_name, end_mode, max_duration_seconds, created_at, deadline_at, join_by, started_at, room_sid)
         VALUES (?1, 'voice-agent', 'end_for_all', 1800, ?2, ?3, ?4, ?2, ?5)`,
      ).bind(room, now - 60_000, now + 1_800_000, now + 540_000, `RM_${room}`),
      testEnv.LEDGER.prepare(
        'INSERT INTO call_participants (room, identity, issued_at, joined_at) VALUES (?1, ?2, ?3, ?3)',
      ).bind(room, caller, now - 60_000),
    ]);
  }

  it('its webhooks apply to what the archive held, and its end reaches the archive', async () => {
    const room = `pre-deploy-${crypto.randomUUID().slice(0, 8)}`;
    await archivedOpenCall(room, 'early-caller');
    const events = callEvents(room, 'early-caller');
    expect((await sendWebhook(events.left[0]!)).data.outcome).toBe('applied');
    expect((await sendWebhook(events.finished)).data.outcome).toBe('applied');
    const view = await call<CallView>(`/calls/${room}`, { headers: ADMIN });
    expect(view.data).toMatchObject({ status: 'ended', end_reason: 'participant_left' });
    expect(view.data.participants!.map((p) => p.identity)).toEqual(['early-caller']);
    expect(await archiveRow(room)).toMatchObject({
      status: 'ended',
      end_reason: 'participant_left',
    });
  });

  it('its caller may still end it with the token the previous Worker issued', async () => {
    const room = `pre-deploy-end-${crypto.randomUUID().slice(0, 8)}`;
    await archivedOpenCall(room, 'early-ender');
    fakeLiveKit();
    const res = await call(`/calls/${room}/end`, {
      headers: ADMIN,
      json: { mode: 'end_for_all' },
    });
    expect(res.status).toBe(200);
    expect(await archiveRow(room)).toMatchObject({ status: 'ended', end_reason: 'api_end_call' });
  });
});

describe('the object’s schema', () => {
  it('has the archive’s columns, as its migrations leave them, in every table both hold', async () => {
    const columns = async (db: D1Database, table: string) =>
      (
        await db
          .prepare(
            `SELECT name, type, pk, "notnull" OR pk > 0 AS required FROM pragma_table_info(?)`,
          )
          .bind(table)
          .all()
      ).results;
    const { room_name: room } = await issueToken('schema');
    for (const table of CALL_TABLES)
      expect(await columns(callLedger(room), table), table).toEqual(
        await columns(testEnv.LEDGER, table),
      );
  });
});

describe('the object keeps only calls the edge tracks, and trusts the archive’s tokens', () => {
  it('a webhook for a room the edge never issued a token for leaves its object empty', async () => {
    const room = `untracked-${crypto.randomUUID().slice(0, 8)}`;
    const res = await sendWebhook({ event: 'room_started', room: { name: room, sid: 'RM_u' } });
    expect(res.data.outcome).toBe('untracked');
    const stored = await runInDurableObject(callObjectOf(room), (_o, state) => ({
      tables: state.storage.sql
        .exec("SELECT name FROM sqlite_master WHERE type = 'table'")
        .toArray(),
      alarm: state.storage.getAlarm(),
    }));
    expect(stored.tables.filter((t) => !String(t.name).startsWith('_cf'))).toEqual([]);
    expect(await stored.alarm).toBeNull();
  });

  it('a token issued after the object took the call (no object hears of tokens) still keeps it from closing as unused', async () => {
    const first = await issueToken('later-token');
    const room = first.room_name;
    await sendWebhook({
      event: 'participant_joined',
      room: { name: room, sid: 'RM_lt' },
      participant: { identity: 'later-token', kind: 'STANDARD' },
    });
    await new Promise((r) => setTimeout(r, 5));
    const second = await call('/token', {
      headers: APP,
      json: { room_name: room, participant_identity: 'later-token-2' },
    });
    expect(second.status).toBe(201);
    const archivedJoinBy = (await archiveRow(room))!.join_by!;
    // The object's own join-by (the first token's) has passed, plus grace.
    await runInDurableObject(callObjectOf(room), (_o, state) => {
      state.storage.sql.exec(
        'UPDATE calls SET join_by = ? WHERE room = ?',
        Date.now() - 3_600_000,
        room,
      );
    });
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    expect(await runDurableObjectAlarm(callObjectOf(room))).toBe(true);
    expect(lk.methods()).toEqual([]);
    const row = (await callRow(room))!;
    expect(row.status).toBe('open');
    expect(row.join_by).toBe(archivedJoinBy);
  });

  it('a participant issued a token after the object took the call reads its own row with its token', async () => {
    const first = await issueToken('reader-1');
    const room = first.room_name;
    await sendWebhook({ event: 'room_started', room: { name: room, sid: 'RM_rd' } });
    const second = await call<{ participant_token: string }>('/token', {
      headers: APP,
      json: { room_name: room, participant_identity: 'reader-2' },
    });
    const view = await call<{ caller: { identity: string; issued_at: string | null } }>(
      `/calls/${room}`,
      { headers: { Authorization: `Bearer ${second.data.participant_token}` } },
    );
    expect(view.status).toBe(200);
    expect(view.data.caller).toMatchObject({ identity: 'reader-2' });
    expect(view.data.caller.issued_at).not.toBeNull();
  });

  it('while the archive fails to learn a long call’s start, the object retries with backoff, not in a loop', async () => {
    const { room_name: room } = await issueToken('start-backoff');
    await sendWebhook({ event: 'room_started', room: { name: room, sid: 'RM_sb' } });
    await runInDurableObject(callObjectOf(room), (_o, state) => {
      state.storage.sql.exec('UPDATE calls SET join_by = ? WHERE room = ?', Date.now() - 1, room);
    });
    const restore = await objectArchive(
      room,
      meteredD1(testEnv.LEDGER, () => new Error('D1_ERROR: Network connection lost.')).db,
    );
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const before = Date.now();
      expect(await runDurableObjectAlarm(callObjectOf(room))).toBe(true);
      delays.push((await alarmOf(room))! - before);
    }
    expect(delays.map((d) => Math.round(d / 1000))).toEqual([1, 2, 4]);
    await restore();
    expect(await runDurableObjectAlarm(callObjectOf(room))).toBe(true);
    expect((await archiveRow(room))!.started_at).toBe((await callRow(room))!.started_at);
  });
});
