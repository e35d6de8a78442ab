import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RETRY_CAP_MS } from '../../edge/call/call-object.ts';
import { deadlineStep } from '../../edge/call/deadlines.ts';
import { configFrom } from '../../edge/config.ts';
import {
  APP,
  archiveRow,
  atCall,
  UNREACHABLE_OBJECTS,
  call,
  expectError,
  fakeLiveKit,
  issueToken,
  callRow,
  seedCall,
  sendWebhook,
  signAsLiveKit,
  testEnv,
  twirpError,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

const GRACE_MS = Number(testEnv.BACKSTOP_GRACE_SECONDS) * 1000;
const objectFor = (room: string) => testEnv.CALLS.get(testEnv.CALLS.idFromName(room));
const alarmOf = (room: string) =>
  runInDurableObject(objectFor(room), (_o, state) => state.storage.getAlarm());
/** Runs the call's alarm now, as if its time had come (the pool's helper), and says whether it ran. */
const ringAlarm = (room: string) => runDurableObjectAlarm(objectFor(room));

const DAY_MS = 86_400_000;
const RETENTION_MS = configFrom(testEnv).RETENTION_CALL_DAYS * DAY_MS;

describe('deadlineStep: what a call’s deadlines owe it', () => {
  const row = { status: 'open' as const, started_at: 1, join_by: 5_000, deadline_at: 10_000 };
  it.each([
    [
      'an ended call: nothing, ever',
      { ...row, status: 'ended' as const },
      99_999,
      { do: 'forget' },
    ],
    ['a live call before its deadline plus grace', row, 10_999, { do: 'wait', until: 11_000 }],
    ['a live call at its deadline plus grace', row, 11_000, { do: 'end_overdue' }],
    [
      'a dispatched call (no token, live)',
      { ...row, started_at: null, join_by: null },
      11_000,
      { do: 'end_overdue' },
    ],
    [
      'an unstarted call before its token expires',
      { ...row, started_at: null },
      5_999,
      { do: 'wait', until: 6_000 },
    ],
    [
      'an unstarted call after its token expired',
      { ...row, started_at: null },
      6_000,
      { do: 'close_if_unused' },
    ],
  ])('%s', (_name, r, now, step) => {
    expect(deadlineStep(r, now, 1_000)).toEqual(step);
  });
  it('forgets a call the ledger does not know', () => {
    expect(deadlineStep(null, 0, 0)).toEqual({ do: 'forget' });
  });
});

describe('the call object: deadlines as alarms', () => {
  it('a token alone wakes no object: one never used costs /token nothing more (the cron closes it)', async () => {
    const token = await issueToken('clock-token');
    expect((await archiveRow(token.room_name))!.status).toBe('open');
    expect(await alarmOf(token.room_name)).toBeNull();
    expect(
      await runInDurableObject(objectFor(token.room_name), (_o, s) =>
        s.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'calls'").toArray(),
      ),
    ).toEqual([]);
  });

  it('a read of a call not yet started takes it into its object, which then closes it as unused at its join-by plus grace', async () => {
    const token = await issueToken('clock-read');
    const row = (await callRow(token.room_name))!;
    expect(await alarmOf(token.room_name)).toBe(row.join_by! + GRACE_MS);
  });

  it('the room’s real start sets the wake-up: the start plus the call’s maximum, plus grace', async () => {
    const room = `clock-start-${Date.now()}`;
    const res = await call('/token', {
      headers: APP,
      json: {
        room_name: room,
        participant_identity: 'clock-start',
        room_config: { agents: [{ metadata: JSON.stringify({ max_duration_seconds: 30 }) }] },
      },
    });
    expect(res.status).toBe(201);
    const started = Date.now();
    await sendWebhook({
      event: 'room_started',
      room: { name: room, sid: 'RM_clock_start', creationTime: String(Math.floor(started / 1000)) },
      id: 'EV_clock_start',
    });
    const deadline = (await callRow(room))!.deadline_at;
    expect(deadline).toBeLessThanOrEqual(started + 30_000);
    expect(await alarmOf(room)).toBe(deadline + GRACE_MS);
  });

  it('a room_started whose object cannot be reached answers 503, so LiveKit retries it; the retry sets the alarm', async () => {
    const { room_name: room } = await issueToken('clock-unreachable');
    const started = {
      event: 'room_started',
      room: { name: room, sid: 'RM_clock_unreachable' },
      id: 'EV_clock_unreachable',
    };
    const deliver = (overrides: Record<string, unknown> = {}) =>
      sendWebhook(started, signAsLiveKit, overrides);
    const refused = await deliver({ CALLS: UNREACHABLE_OBJECTS });
    expectError(refused, 503, 'ledger_unavailable');
    expect(refused.headers.get('retry-after')).toBe('5');
    expect((await callRow(room))!.started_at).toBeNull();
    const retried = await deliver();
    expect([retried.status, retried.data.outcome]).toEqual([200, 'applied']);
    const row = (await callRow(room))!;
    expect(row.started_at).not.toBeNull();
    // Its tokens expire first: then the archive learns it started; its deadline comes later.
    expect(await alarmOf(room)).toBe(Math.min(row.join_by!, row.deadline_at + GRACE_MS));
  });

  it('room_finished ends the call: the archive gets its end, and the object wakes only to delete it at retention', async () => {
    const { room_name: room } = await issueToken('clock-finished');
    const lkRoom = { name: room, sid: 'RM_clock_finished' };
    await sendWebhook({ event: 'room_started', room: lkRoom, id: 'EV_clock_f1' });
    expect((await archiveRow(room))!.started_at).toBeNull(); // the archive learns at the end
    const finished = await sendWebhook({ event: 'room_finished', room: lkRoom, id: 'EV_clock_f2' });
    expect(finished.data.outcome).toBe('applied');
    const row = (await callRow(room))!;
    expect(await archiveRow(room)).toMatchObject({
      status: 'ended',
      end_source: 'webhook',
      started_at: row.started_at,
      room_sid: 'RM_clock_finished',
    });
    expect(await alarmOf(room)).toBe(row.ended_at! + RETENTION_MS);
  });

  it('at retention the object deletes everything it holds', async () => {
    const { room_name: room } = await issueToken('clock-retention');
    await seedCall.ended(room, { at: Date.now() - RETENTION_MS - 1 });
    expect(await ringAlarm(room)).toBe(true);
    expect(
      await runInDurableObject(objectFor(room), (_o, s) => s.storage.sql.databaseSize),
    ).toBeLessThan(
      await runInDurableObject(objectFor(room), (_o, s) => {
        s.storage.sql.exec('CREATE TABLE probe (x)'); // an empty database's size, for comparison
        const size = s.storage.sql.databaseSize;
        s.storage.sql.exec('DROP TABLE probe');
        return size + 1;
      }),
    );
    expect(
      await runInDurableObject(objectFor(room), (_o, s) =>
        s.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'calls'").toArray(),
      ),
    ).toEqual([]);
    expect(await alarmOf(room)).toBeNull();
  });

  it('a dispatch whose watch failed asks again on its retry (nothing else would: the room started before the call existed)', async () => {
    const room = `clock-dispatch-retry-${Date.now()}`;
    fakeLiveKit({
      ListRooms: () => Response.json({ rooms: [{ name: room, sid: 'RM_dr' }] }),
      ListDispatch: () => Response.json({ agentDispatches: [] }),
      CreateDispatch: () => Response.json({ id: 'AD_dr', room, agentName: 'voice-agent' }),
    });
    const first = await call(
      `/calls/${room}/dispatch`,
      { headers: APP, json: {} },
      { CALLS: UNREACHABLE_OBJECTS },
    );
    expectError(first, 503, 'ledger_unavailable');
    expect(await alarmOf(room)).toBeNull();
    const retry = await call(`/calls/${room}/dispatch`, { headers: APP, json: {} });
    expect(retry.status).toBe(201);
    expect(await alarmOf(room)).toBe((await callRow(room))!.deadline_at + GRACE_MS);
  });

  it('ends an overdue live call when its alarm rings: DeleteRoom, then max_duration from the deadline', async () => {
    const { room_name: room } = await issueToken('clock-overdue');
    await seedCall.live(room, Date.now() - GRACE_MS - 1);
    const lk = fakeLiveKit();
    expect(await ringAlarm(room)).toBe(true);
    expect(lk.calls).toEqual([{ method: 'DeleteRoom', body: { room } }]);
    const ended = {
      status: 'ended',
      end_reason: 'max_duration',
      ended_by: 'system',
      end_source: 'deadline',
    };
    expect(await callRow(room)).toMatchObject(ended);
    expect(await archiveRow(room)).toMatchObject(ended);
    expect(await alarmOf(room)).toBe((await callRow(room))!.ended_at! + RETENTION_MS);
  });

  it('keeps an overdue call’s deadline through a LiveKit outage: retries with backoff, then ends it', async () => {
    const { room_name: room } = await issueToken('clock-outage');
    await seedCall.live(room, Date.now() - GRACE_MS - 1);
    const down = fakeLiveKit({ DeleteRoom: () => twirpError(500, 'internal', 'down') });
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const before = Date.now();
      expect(await ringAlarm(room)).toBe(true);
      delays.push((await alarmOf(room))! - before);
    }
    expect((await callRow(room))!.status).toBe('open');
    // 1 s, 2 s, 4 s (each measured from just before its ring).
    expect(delays.map((d) => Math.round(d / 1000))).toEqual([1, 2, 4]);
    expect(Math.max(...delays)).toBeLessThanOrEqual(RETRY_CAP_MS + 1_000);
    down.restore();
    const up = fakeLiveKit();
    expect(await ringAlarm(room)).toBe(true);
    expect(up.methods()).toEqual(['DeleteRoom']);
    expect(await callRow(room)).toMatchObject({ status: 'ended', end_reason: 'max_duration' });
  });

  it('a call still in time is left alone; it wakes when its tokens expire (the archive learns it started), then at its deadline plus grace', async () => {
    const { room_name: room } = await issueToken('clock-early');
    const deadline = Date.now() + 3_600_000;
    await seedCall.live(room, deadline);
    const lk = fakeLiveKit();
    expect(await ringAlarm(room)).toBe(true);
    expect(lk.calls).toEqual([]);
    const row = (await callRow(room))!;
    expect(row.status).toBe('open');
    expect(await alarmOf(room)).toBe(row.join_by);
    // Its tokens expired: the archive (the open-call cap) is told it started.
    await atCall(room, 'UPDATE calls SET join_by = ?2 WHERE room = ?1', room, Date.now() - 1);
    expect(await ringAlarm(room)).toBe(true);
    expect((await archiveRow(room))!.started_at).toBe(row.started_at);
    expect(await alarmOf(room)).toBe(deadline + GRACE_MS);
  });

  it('a call that ended meanwhile is not ended again, nor LiveKit asked', async () => {
    const { room_name: room } = await issueToken('clock-ended');
    await seedCall.live(room, Date.now() - GRACE_MS - 1);
    await seedCall.ended(room, { reason: 'participant_left' });
    const lk = fakeLiveKit();
    expect(await ringAlarm(room)).toBe(true);
    expect(lk.calls).toEqual([]);
    expect((await callRow(room))!.end_reason).toBe('participant_left');
    expect(await alarmOf(room)).toBe((await callRow(room))!.ended_at! + RETENTION_MS);
  });

  it('a call whose token expired unused: not_joined, without DeleteRoom', async () => {
    const { room_name: room } = await issueToken('clock-unused');
    await seedCall.unused(room, Date.now() - GRACE_MS - 1);
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    expect(await ringAlarm(room)).toBe(true);
    expect(lk.methods()).toEqual(['ListRooms']);
    const closed = { status: 'ended', end_reason: 'not_joined', end_source: 'deadline' };
    expect(await callRow(room)).toMatchObject(closed);
    expect(await archiveRow(room)).toMatchObject(closed);
  });

  it('an unused-looking call whose room LiveKit has after all is marked started (the archive too) and watched to its deadline', async () => {
    const { room_name: room } = await issueToken('clock-unseen-start');
    await seedCall.unused(room, Date.now() - GRACE_MS - 1);
    const deadline = (await callRow(room))!.deadline_at;
    fakeLiveKit({ ListRooms: () => Response.json({ rooms: [{ name: room, sid: 'RM_x' }] }) });
    expect(await ringAlarm(room)).toBe(true);
    const row = await callRow(room);
    expect(row).toMatchObject({ status: 'open' });
    expect(row!.started_at).not.toBeNull();
    expect((await archiveRow(room))!.started_at).toBe(row!.started_at);
    expect(await alarmOf(room)).toBe(deadline + GRACE_MS);
  });

  it('a dispatch into an existing room opens the call and watches its maximum duration', async () => {
    const room = `clock-dispatch-${Date.now()}`;
    fakeLiveKit({
      ListRooms: () => Response.json({ rooms: [{ name: room, sid: 'RM_d' }] }),
      ListDispatch: () => Response.json({ agentDispatches: [] }),
      CreateDispatch: () => Response.json({ id: 'AD_clock', room, agentName: 'voice-agent' }),
    });
    const res = await call(`/calls/${room}/dispatch`, { headers: APP, json: {} });
    expect(res.status).toBe(201);
    const row = await callRow(room);
    expect(await alarmOf(room)).toBe(row!.deadline_at + GRACE_MS);
  });
});
