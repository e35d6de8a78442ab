import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ADMIN,
  APP,
  askAdmission,
  call,
  expectError,
  fakeLiveKit,
  issueToken,
  callRow,
  sendWebhook,
  twirpError,
  type EndCallResponse,
  atCall,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

const seconds = (ms: number) => String(Math.floor(ms / 1000));

/** A call whose own room (RM_own) started and that the admin API then ended. */
async function endedCall(sub: string) {
  const { room_name } = await issueToken(sub);
  fakeLiveKit();
  await sendWebhook({
    event: 'room_started',
    room: { name: room_name, sid: 'RM_own', creationTime: seconds(Date.now() - 5_000) },
  });
  const end = await call<EndCallResponse>(`/calls/${room_name}/end`, {
    headers: ADMIN,
    json: { mode: 'end_for_all' },
  });
  expect(end.status).toBe(200);
  vi.restoreAllMocks();
  return { room: room_name, row: (await callRow(room_name))! };
}

/** A call the admin API ended before any webhook told the ledger its room sid. */
async function endedBeforeAnyWebhook(sub: string) {
  const { room_name } = await issueToken(sub);
  fakeLiveKit();
  await call(`/calls/${room_name}/end`, { headers: ADMIN, json: { mode: 'end_for_all' } });
  vi.restoreAllMocks();
  const row = (await callRow(room_name))!;
  expect(row).toMatchObject({ status: 'ended', room_sid: null });
  return { room: room_name, row };
}

const endFields = (row: Awaited<ReturnType<typeof callRow>>) => ({
  status: row!.status,
  end_reason: row!.end_reason,
  ended_by: row!.ended_by,
  ended_at: row!.ended_at,
  end_source: row!.end_source,
  room_sid: row!.room_sid,
});

describe('a room LiveKit recreates for an ended call (a token reused after its call ended)', () => {
  it("is closed on its first webhook, counted once, and leaves the call's end and room sid as they were", async () => {
    const { room, row } = await endedCall('revive-1');
    const lk = fakeLiveKit();
    const revived = { name: room, sid: 'RM_again', creationTime: seconds(Date.now()) };
    for (const [i, event] of ['room_started', 'participant_joined', 'room_finished'].entries()) {
      const res = await sendWebhook({
        event,
        room: revived,
        id: `EV_rev_${i}`,
        ...(event === 'participant_joined' && {
          participant: { identity: 'revive-1', kind: 0 },
        }),
      });
      expect(res.data.outcome).toBe('revival');
    }
    expect(lk.bodiesOf('DeleteRoom')).toEqual([{ room }, { room }, { room }]);
    const after = await callRow(room);
    expect(endFields(after)).toEqual(endFields(row));
    expect(after).toMatchObject({ revival_attempts: 1, last_revival_sid: 'RM_again' });
    const view = await call<{ revival_attempts: number; participants: { joined_at: unknown }[] }>(
      `/calls/${room}`,
      { headers: ADMIN },
    );
    expect(view.data.revival_attempts).toBe(1);
    // The revived room's join is not the call's.
    expect(view.data.participants.every((p) => p.joined_at === null)).toBe(true);
  });

  it('counts a second revival of the same call as a second attempt', async () => {
    const { room } = await endedCall('revive-2');
    fakeLiveKit();
    for (const sid of ['RM_a', 'RM_b'])
      await sendWebhook({ event: 'room_started', room: { name: room, sid }, id: `EV_${sid}` });
    expect((await callRow(room))!.revival_attempts).toBe(2);
  });

  it("applies a late webhook of the call's own room, created before the end, as usual", async () => {
    const { room_name } = await issueToken('late-own');
    fakeLiveKit();
    await call(`/calls/${room_name}/end`, { headers: ADMIN, json: { mode: 'end_for_all' } });
    const lk = fakeLiveKit();
    const res = await sendWebhook({
      event: 'room_started',
      room: { name: room_name, sid: 'RM_first', creationTime: seconds(Date.now() - 10_000) },
    });
    expect(res.data.outcome).toBe('applied');
    expect(lk.calls).toHaveLength(0);
    expect(await callRow(room_name)).toMatchObject({
      room_sid: 'RM_first',
      revival_attempts: 0,
      end_reason: 'api_end_call',
    });
  });

  it('closes a room revived in the same second as the end, when the event gives only seconds and the call never learned its room sid', async () => {
    const { room, row } = await endedBeforeAnyWebhook('revive-same-second');
    const lk = fakeLiveKit();
    // LiveKit's seconds-only `creationTime` (no creationTimeMs), in the second the call ended.
    const revived = { name: room, sid: 'RM_again', creationTime: seconds(row.ended_at!) };
    for (const event of ['room_started', 'participant_joined']) {
      const res = await sendWebhook({
        event,
        room: revived,
        ...(event === 'participant_joined' && {
          participant: { identity: 'revive-same-second', kind: 0 },
        }),
      });
      expect(res.data.outcome).toBe('revival');
    }
    expect(lk.bodiesOf('DeleteRoom')).toEqual([{ room }, { room }]);
    const after = await callRow(room);
    expect(endFields(after)).toEqual(endFields(row));
    expect(after).toMatchObject({ revival_attempts: 1, last_revival_sid: 'RM_again' });
  });

  it("keeps the call's own room sid when a room_started names another sid while it is open", async () => {
    const { room_name } = await issueToken('sid-stays');
    for (const sid of ['RM_one', 'RM_two'])
      await sendWebhook({ event: 'room_started', room: { name: room_name, sid }, id: `EV_${sid}` });
    expect((await callRow(room_name))!.room_sid).toBe('RM_one');
  });

  it('answers 503 when LiveKit cannot close the revived room, and closes it on LiveKit’s retry', async () => {
    const { room } = await endedCall('revive-retry');
    const event = { event: 'room_started', room: { name: room, sid: 'RM_x' }, id: 'EV_retry' };
    fakeLiveKit({ DeleteRoom: () => twirpError(500, 'internal', 'boom') });
    expectError(await sendWebhook(event), 502, 'livekit_error');
    vi.restoreAllMocks();
    const lk = fakeLiveKit();
    expect((await sendWebhook(event)).data.outcome).toBe('revival');
    expect(lk.bodiesOf('DeleteRoom')).toEqual([{ room }]);
    expect((await callRow(room))!.revival_attempts).toBe(1);
  });
});

describe('POST /calls/:room/admit: the agent asks before any model work', () => {
  it('admits the agent of an open call without asking LiveKit', async () => {
    const { room_name } = await issueToken('admit-open');
    const lk = fakeLiveKit();
    const res = await askAdmission(room_name);
    expect(res).toMatchObject({ status: 200, data: { admit: true } });
    expect(lk.calls).toHaveLength(0);
  });

  it('admits one agent job per call: a second job (a re-dispatch racing a slow first one) stays out, the room stays', async () => {
    const { room_name } = await issueToken('one-agent');
    const lk = fakeLiveKit({ ListParticipants: () => Response.json({ participants: [] }) });
    expect((await askAdmission(room_name, { job_id: 'AJ_first' })).data.admit).toBe(true);
    expect((await askAdmission(room_name, { job_id: 'AJ_first' })).data.admit).toBe(true);
    expect((await askAdmission(room_name, { job_id: 'AJ_second' })).data).toEqual({
      admit: false,
      reason: 'agent_present',
    });
    expect(lk.methods()).not.toContain('DeleteRoom');
    expect((await callRow(room_name))!.agent_job_id).toBe('AJ_first');
  });

  it.each([
    ['admits a new job when the first, admitted long ago, never reached the room', [], true],
    [
      'refuses a new job while the first agent is in the room',
      [{ identity: 'agent-AJ_first', kind: 'AGENT' }],
      false,
    ],
  ])('%s', async (_name, participants, admit) => {
    const { room_name } = await issueToken(`replace-${admit}`);
    await atCall(
      room_name,
      'UPDATE calls SET agent_job_id = ?2, agent_admitted_at = ?3 WHERE room = ?1',
      room_name,
      'AJ_first',
      Date.now() - 60_000,
    );
    fakeLiveKit({ ListParticipants: () => Response.json({ participants }) });
    expect((await askAdmission(room_name, { job_id: 'AJ_next' })).data.admit).toBe(admit);
  });

  it('refuses the agent of a revived room, closes the room and counts the revival', async () => {
    const { room, row } = await endedCall('admit-revived');
    const lk = fakeLiveKit();
    const res = await askAdmission(room, { room_sid: 'RM_revived' });
    expect(res).toMatchObject({ status: 200, data: { admit: false, reason: 'call_ended' } });
    expect(lk.bodiesOf('DeleteRoom')).toEqual([{ room }]);
    const after = await callRow(room);
    expect(endFields(after)).toEqual(endFields(row));
    expect(after!.revival_attempts).toBe(1);
  });

  it("refuses a late agent of the call's own room without counting a revival", async () => {
    const { room } = await endedCall('admit-late');
    fakeLiveKit();
    const res = await askAdmission(room, { room_sid: 'RM_own' });
    expect(res.data).toEqual({ admit: false, reason: 'call_ended' });
    expect((await callRow(room))!.revival_attempts).toBe(0);
  });

  it("counts a revival for an agent whose room was created in the end's second, known only to the second", async () => {
    const { room, row } = await endedBeforeAnyWebhook('admit-same-second');
    const lk = fakeLiveKit();
    // What the agent sends when LiveKit gave it only `creationTime` (seconds): that second in ms.
    const createdAt = Math.floor(row.ended_at! / 1000) * 1000;
    const res = await askAdmission(room, { room_sid: 'RM_revived', room_created_at: createdAt });
    expect(res).toMatchObject({ status: 200, data: { admit: false, reason: 'call_ended' } });
    expect(lk.bodiesOf('DeleteRoom')).toEqual([{ room }]);
    expect(await callRow(room)).toMatchObject({
      revival_attempts: 1,
      last_revival_sid: 'RM_revived',
      room_sid: null,
    });
  });

  it('still refuses when LiveKit cannot close the room (the webhook closes it)', async () => {
    const { room } = await endedCall('admit-lk-down');
    fakeLiveKit({ DeleteRoom: () => new TypeError('fetch failed') });
    const res = await askAdmission(room, { room_sid: 'RM_revived' });
    expect(res).toMatchObject({ status: 200, data: { admit: false } });
  });

  it('admits the agent of a room the edge never issued a token for', async () => {
    expect((await askAdmission('not-ours')).data).toEqual({ admit: true });
  });

  it.each([
    [
      'unsigned',
      (room: string) => askAdmission(room, {}, { sign: false }),
      401,
      'invalid_signature',
    ],
    [
      'for another room',
      (room: string) => askAdmission(room, { room: 'elsewhere' }),
      400,
      'invalid_field',
    ],
    [
      'with an unknown field',
      (room: string) => askAdmission(room, { extra: 1 } as never),
      400,
      'unsupported_field',
    ],
  ])('answers a request %s with a 4xx naming the problem', async (_name, ask, status, code) => {
    const { room_name } = await issueToken(`admit-bad-${status}-${code}`);
    const res = await ask(room_name);
    expect(res.status).toBe(status);
    expect((res.data as unknown as { error: { code: string } }).error.code).toBe(code);
  });
});

describe('an explicit end of a call the ledger has ended', () => {
  it.each([
    ['admin', ADMIN],
    ['app', APP],
  ])('by the %s key still deletes the room and keeps the first end', async (_who, headers) => {
    const { room, row } = await endedCall(`end-again-${_who}`);
    const lk = fakeLiveKit();
    const res = await call<EndCallResponse>(`/calls/${room}/end`, {
      headers,
      json: { mode: 'end_for_all' },
    });
    expect(res.status).toBe(200);
    expect(res.data.already_ended).toBe(true);
    expect(lk.bodiesOf('DeleteRoom')).toEqual([{ room }]);
    expect(endFields(await callRow(room))).toEqual(endFields(row));
  });
});
