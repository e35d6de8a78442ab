import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ADMIN,
  APP,
  bearerFor,
  call,
  fakeLiveKit,
  issueToken,
  ledgerRow,
  liveKitTokenFor,
  twirpError,
} from './helpers.ts';

afterEach(() => vi.restoreAllMocks());
const endBody = { mode: 'end_for_all', reason: 'support closed the ticket' };

describe('POST /calls/:room/end', () => {
  it('deletes the room for the admin and records api_end_call; a second call answers the recorded end', async () => {
    const { room_name } = await issueToken('alice');
    const lk = fakeLiveKit();
    const first = await call(`/calls/${room_name}/end`, { headers: ADMIN, json: endBody });
    expect(first.status).toBe(200);
    expect(lk.calls).toEqual([{ method: 'DeleteRoom', body: { room: room_name } }]);
    expect(first.data.call).toMatchObject({
      status: 'ended',
      end_reason: 'api_end_call',
      ended_by: 'api',
      end_note: 'support closed the ticket',
    });
    const second = await call(`/calls/${room_name}/end`, { headers: ADMIN, json: endBody });
    expect(second.status).toBe(200);
    expect(second.data.already_ended).toBe(true);
    expect(second.data.call.ended_at).toBe(first.data.call.ended_at);
    expect(lk.calls).toHaveLength(1);
  });

  it('lets the participant end their own call by their app JWT or by their LiveKit token', async () => {
    const a = await issueToken('p1');
    fakeLiveKit();
    expect(
      (await call(`/calls/${a.room_name}/end`, { headers: await bearerFor('p1'), json: endBody }))
        .status,
    ).toBe(200);
    const b = await issueToken('p2');
    const res = await call(`/calls/${b.room_name}/end`, {
      headers: { Authorization: `Bearer ${b.participant_token}` },
      json: endBody,
    });
    expect(res.status).toBe(200);
    expect(res.data.call.end_reason).toBe('api_end_call');
  });

  it("forbids anyone else: another user, another room's participant, an app key", async () => {
    const { room_name } = await issueToken('owner');
    const other = await issueToken('stranger');
    const lk = fakeLiveKit();
    const byUser = await call(`/calls/${room_name}/end`, {
      headers: await bearerFor('stranger'),
      json: endBody,
    });
    expect([byUser.status, byUser.data.error.code]).toEqual([403, 'not_a_participant']);
    const byOtherRoom = await call(`/calls/${room_name}/end`, {
      headers: { Authorization: `Bearer ${other.participant_token}` },
      json: endBody,
    });
    expect([byOtherRoom.status, byOtherRoom.data.error.code]).toEqual([403, 'not_a_participant']);
    const forged = await call(`/calls/${room_name}/end`, {
      headers: { Authorization: `Bearer ${await liveKitTokenFor('intruder', room_name)}` },
      json: endBody,
    });
    expect(forged.status).toBe(403);
    const byApp = await call(`/calls/${room_name}/end`, { headers: APP, json: endBody });
    expect(byApp.status).toBe(403);
    const none = await call(`/calls/${room_name}/end`, { json: endBody });
    expect(none.status).toBe(401);
    expect(lk.calls).toEqual([]);
    expect((await ledgerRow(room_name))!.status).toBe('open');
  });

  it('answers 404 for an unknown room and 400 for a bad mode or room name', async () => {
    expect(
      (await call('/calls/no-such-room/end', { headers: ADMIN, json: endBody })).data.error.code,
    ).toBe('call_not_found');
    const { room_name } = await issueToken('m');
    const mode = await call(`/calls/${room_name}/end`, {
      headers: ADMIN,
      json: { mode: 'explode' },
    });
    expect([mode.status, mode.data.error.code]).toEqual([400, 'invalid_field']);
    expect(mode.data.error.message).toContain('mode');
    const name = await call(`/calls/${encodeURIComponent('bad room!')}/end`, {
      headers: ADMIN,
      json: endBody,
    });
    expect([name.status, name.data.error.code]).toEqual([400, 'invalid_field']);
  });

  it('treats LiveKit "not found" as already gone: success, never a 500', async () => {
    const { room_name } = await issueToken('nf');
    fakeLiveKit({
      DeleteRoom: () => twirpError(404, 'not_found', 'requested room does not exist'),
    });
    const res = await call(`/calls/${room_name}/end`, { headers: ADMIN, json: endBody });
    expect(res.status).toBe(200);
    expect(res.data.call.end_reason).toBe('api_end_call');
  });

  it.each([
    ['a LiveKit 500', () => twirpError(500, 'internal', 'boom'), 502, 'livekit_error'],
    ['an unreachable LiveKit', () => new TypeError('fetch failed'), 503, 'livekit_unreachable'],
    ['a LiveKit that never answers', () => 'hang' as const, 503, 'livekit_timeout'],
  ])('maps %s to its status with the ledger unchanged', async (_name, reply, status, code) => {
    const { room_name } = await issueToken(`u-${code}`);
    fakeLiveKit({ DeleteRoom: reply });
    const res = await call(`/calls/${room_name}/end`, { headers: ADMIN, json: endBody });
    expect(res.status).toBe(status);
    expect(res.data.error.code).toBe(code);
    if (status === 503) expect(res.headers.get('retry-after')).toBe('5');
    expect((await ledgerRow(room_name))!.status).toBe('open');
  });

  it('remove_agent removes only agent participants and keeps the call open', async () => {
    const { room_name } = await issueToken('ra');
    const lk = fakeLiveKit({
      ListParticipants: () =>
        Response.json({
          participants: [
            { identity: 'ra', kind: 'STANDARD' },
            { identity: 'agent-AJ_1', kind: 'AGENT' },
          ],
        }),
    });
    const res = await call(`/calls/${room_name}/end`, {
      headers: ADMIN,
      json: { mode: 'remove_agent' },
    });
    expect(res.status).toBe(200);
    expect(res.data.removed_agents).toEqual(['agent-AJ_1']);
    expect(lk.calls.map((c) => [c.method, c.body.identity])).toEqual([
      ['ListParticipants', undefined],
      ['RemoveParticipant', 'agent-AJ_1'],
    ]);
    expect(res.data.call.status).toBe('open');
    expect(res.data.call.agent_removed_at).toBeTruthy();
  });
});

describe('POST /calls/:room/dispatch', () => {
  it('dispatches once: a retry finds the existing dispatch instead of adding a second agent', async () => {
    const dispatches: any[] = [];
    const lk = fakeLiveKit({
      ListRooms: (b) => Response.json({ rooms: [{ name: b.names[0], sid: 'RM_1' }] }),
      ListDispatch: () => Response.json({ agentDispatches: dispatches }),
      CreateDispatch: (b) => {
        dispatches.push({ id: 'AD_1', agentName: b.agentName, room: b.room });
        return Response.json(dispatches[0]);
      },
    });
    const first = await call('/calls/sip-room-1/dispatch', { headers: ADMIN, method: 'POST' });
    expect([first.status, first.data.dispatch_id, first.data.created]).toEqual([201, 'AD_1', true]);
    const created = lk.calls.find((c) => c.method === 'CreateDispatch')!;
    expect(created.body.agentName).toBe('voice-agent');
    expect(JSON.parse(created.body.metadata)).toMatchObject({ end_mode: 'end_for_all' });
    const second = await call('/calls/sip-room-1/dispatch', { headers: APP, json: {} });
    expect([second.status, second.data.created]).toEqual([200, false]);
    expect(lk.methods().filter((m) => m === 'CreateDispatch')).toHaveLength(1);
  });

  it('answers 404 when LiveKit has no such room, 400 for an unknown agent, 403 for end users', async () => {
    fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    expect(
      (await call('/calls/ghost/dispatch', { headers: ADMIN, json: {} })).data.error.code,
    ).toBe('room_not_found');
    expect(
      (await call('/calls/ghost/dispatch', { headers: ADMIN, json: { agent_name: 'nope' } })).data
        .error.code,
    ).toBe('unknown_agent');
    expect(
      (await call('/calls/ghost/dispatch', { headers: await bearerFor('u'), json: {} })).status,
    ).toBe(403);
  });
});

describe('GET /calls/:room and GET /calls', () => {
  it('shows the call to its participant and the admin, not to others', async () => {
    const { room_name } = await issueToken('viewer');
    const mine = await call(`/calls/${room_name}`, { headers: await bearerFor('viewer') });
    expect(mine.status).toBe(200);
    expect(mine.data).toMatchObject({ room: room_name, status: 'open', report: null });
    expect(mine.data.participants.map((p: any) => p.identity)).toEqual(['viewer']);
    expect((await call(`/calls/${room_name}`, { headers: ADMIN })).status).toBe(200);
    expect((await call(`/calls/${room_name}`, { headers: await bearerFor('nosy') })).status).toBe(
      403,
    );
  });

  it('pages through all calls for the admin only', async () => {
    for (const who of ['l1', 'l2', 'l3']) await issueToken(who);
    const page1 = await call('/calls?limit=2', { headers: ADMIN });
    expect(page1.data.calls).toHaveLength(2);
    expect(page1.data.next_cursor).toBeTruthy();
    const page2 = await call(`/calls?limit=2&cursor=${page1.data.next_cursor}`, { headers: ADMIN });
    const rooms = [...page1.data.calls, ...page2.data.calls].map((c: any) => c.room);
    expect(new Set(rooms).size).toBe(rooms.length);
    expect((await call('/calls?limit=500', { headers: ADMIN })).status).toBe(400);
    expect((await call('/calls?cursor=%%%', { headers: ADMIN })).status).toBe(400);
    expect((await call('/calls', { headers: await bearerFor('l1') })).status).toBe(403);
  });
});
