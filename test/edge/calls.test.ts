import { AccessToken } from 'livekit-server-sdk';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDispatchMetadata } from '../../wire-contract/index.ts';
import {
  ADMIN,
  APP,
  bearerFor,
  call,
  expectError,
  fakeLiveKit,
  issueToken,
  callRow,
  liveKitTokenFor,
  postAgentReport,
  seedCall,
  sendWebhook,
  testEnv,
  twirpError,
  type CallerView,
  type CallList,
  type CallView,
  type DispatchResponse,
  type EndCallResponse,
  type TokenResponse,
  failingObjects,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());
const endBody = { mode: 'end_for_all', reason: 'support closed the ticket' };

describe('POST /calls/:room/end', () => {
  it('deletes the room for the admin and records api_end_call; a second call answers the recorded end', async () => {
    const { room_name } = await issueToken('alice');
    const lk = fakeLiveKit();
    const first = await call<EndCallResponse>(`/calls/${room_name}/end`, {
      headers: ADMIN,
      json: endBody,
    });
    expect(first.status).toBe(200);
    expect(lk.calls).toEqual([{ method: 'DeleteRoom', body: { room: room_name } }]);
    expect(first.data.call).toMatchObject({
      status: 'ended',
      end_reason: 'api_end_call',
      ended_by: 'api',
      end_note: 'support closed the ticket',
    });
    const second = await call<EndCallResponse>(`/calls/${room_name}/end`, {
      headers: ADMIN,
      json: endBody,
    });
    expect(second.status).toBe(200);
    expect(second.data.already_ended).toBe(true);
    expect(second.data.call.ended_at).toBe(first.data.call.ended_at);
    // Asked again all the same: a still-valid token may have recreated the room since.
    expect(lk.methods()).toEqual(['DeleteRoom', 'DeleteRoom']);
  });

  it('records the explicit end over an end only inferred from webhooks (the room is already gone)', async () => {
    const { room_name } = await issueToken('inferred');
    await seedCall.ended(room_name, { reason: 'room_deleted', source: 'webhook', strength: 0 });
    const lk = fakeLiveKit({
      DeleteRoom: () => twirpError(404, 'not_found', 'requested room does not exist'),
    });
    const res = await call<EndCallResponse>(`/calls/${room_name}/end`, {
      headers: ADMIN,
      json: endBody,
    });
    expect(res.status).toBe(200);
    expect(res.data.already_ended).toBe(false);
    expect(res.data.call).toMatchObject({ end_reason: 'api_end_call', end_source: 'api' });
    expect(lk.methods()).toEqual(['DeleteRoom']);
  });

  it('answers an end the agent reported as already ended, keeping that end, and still deletes the room', async () => {
    const { room_name } = await issueToken('reported');
    await seedCall.ended(room_name, {
      reason: 'agent_end_call',
      endedBy: 'agent',
      source: 'agent',
      strength: 1,
    });
    const lk = fakeLiveKit();
    const res = await call<EndCallResponse>(`/calls/${room_name}/end`, {
      headers: ADMIN,
      json: endBody,
    });
    expect(res.status).toBe(200);
    expect(res.data.already_ended).toBe(true);
    expect(res.data.call.end_reason).toBe('agent_end_call');
    expect(lk.calls).toEqual([{ method: 'DeleteRoom', body: { room: room_name } }]);
  });

  type Credential = (token: TokenResponse) => Promise<HeadersInit>;
  it.each<[string, string, Credential]>([
    ['their app JWT', 'p1', (token) => bearerFor(token.participant_identity)],
    [
      'their LiveKit token',
      'p2',
      async (token) => ({ Authorization: `Bearer ${token.participant_token}` }),
    ],
  ])('lets the participant end their own call by %s', async (_name, sub, credential) => {
    const token = await issueToken(sub);
    fakeLiveKit();
    const res = await call<EndCallResponse>(`/calls/${token.room_name}/end`, {
      headers: await credential(token),
      json: endBody,
    });
    expect(res.status).toBe(200);
    expect(res.data.call.end_reason).toBe('api_end_call');
  });

  describe('with a participant token past its TTL', () => {
    const expiredFor = async (room: string, identity: string) => ({
      Authorization: `Bearer ${await liveKitTokenFor(identity, room, -120)}`,
    });

    it('still ends the call while it is open', async () => {
      const token = await issueToken('long-caller');
      const lk = fakeLiveKit();
      const res = await call<EndCallResponse>(`/calls/${token.room_name}/end`, {
        headers: await expiredFor(token.room_name, 'long-caller'),
        json: endBody,
      });
      expect(res.status).toBe(200);
      expect(res.data.call.end_reason).toBe('api_end_call');
      expect(lk.methods()).toEqual(['DeleteRoom']);
    });

    it('still reads the call while it is open', async () => {
      const token = await issueToken('long-reader');
      const res = await call<CallerView>(`/calls/${token.room_name}`, {
        headers: await expiredFor(token.room_name, 'long-reader'),
      });
      expect(res.status).toBe(200);
      expect(res.data.status).toBe('open');
    });

    it('is refused once the call has ended', async () => {
      const token = await issueToken('late-caller');
      await seedCall.ended(token.room_name);
      const lk = fakeLiveKit();
      const res = await call(`/calls/${token.room_name}/end`, {
        headers: await expiredFor(token.room_name, 'late-caller'),
        json: endBody,
      });
      expectError(res, 401, 'token_expired');
      expect(lk.calls).toHaveLength(0);
    });

    it('is refused when signed with another secret', async () => {
      const token = await issueToken('forger');
      const forged = new AccessToken(testEnv.LIVEKIT_API_KEY, 'not-the-edge-secret-not-the-edge', {
        identity: 'forger',
        ttl: -120,
      });
      forged.addGrant({ roomJoin: true, room: token.room_name });
      const res = await call(`/calls/${token.room_name}/end`, {
        headers: { Authorization: `Bearer ${await forged.toJwt()}` },
        json: endBody,
      });
      expectError(res, 401, 'invalid_credential');
    });
  });

  type Intruder = (room: string, other: TokenResponse) => Promise<HeadersInit>;
  it.each<[string, Intruder, number, string]>([
    ['another user', () => bearerFor('stranger'), 403, 'not_a_participant'],
    [
      "another room's participant",
      async (_room, other) => ({ Authorization: `Bearer ${other.participant_token}` }),
      403,
      'not_a_participant',
    ],
    [
      'a LiveKit token for this room the edge never issued',
      async (room) => ({ Authorization: `Bearer ${await liveKitTokenFor('intruder', room)}` }),
      403,
      'not_a_participant',
    ],
    ['no credential', async () => ({}), 401, 'unauthenticated'],
  ])('forbids %s, leaving LiveKit and the ledger alone', async (name, intruder, status, code) => {
    // Identities of their own: each caller holds at most MAX_OPEN_CALLS_PER_CALLER open calls.
    const { room_name } = await issueToken(`owner-${name}`);
    const other = await issueToken(`other-${name}`);
    const lk = fakeLiveKit();
    const res = await call(`/calls/${room_name}/end`, {
      headers: await intruder(room_name, other),
      json: endBody,
    });
    expectError(res, status, code);
    expect(lk.calls).toEqual([]);
    expect((await callRow(room_name))!.status).toBe('open');
  });

  // The issued-identity check passes here (the same identity holds a token for both rooms), so
  // only the token's own room stops it.
  it("refuses a participant's LiveKit token for another room of the same identity: 403, LiveKit and the ledger untouched", async () => {
    const roomA = await issueToken('two-rooms');
    const roomB = await issueToken('two-rooms');
    expect(roomA.room_name).not.toBe(roomB.room_name);
    const tokenA = { Authorization: `Bearer ${roomA.participant_token}` };
    const before = await callRow(roomB.room_name);
    const lk = fakeLiveKit();
    const end = await call(`/calls/${roomB.room_name}/end`, { headers: tokenA, json: endBody });
    expect(expectError(end, 403, 'not_a_participant').message).toContain('another room');
    const view = await call(`/calls/${roomB.room_name}`, { headers: tokenA });
    expect(expectError(view, 403, 'not_a_participant').message).toContain('another room');
    expect(lk.calls).toEqual([]);
    expect(await callRow(roomB.room_name)).toEqual(before);
    // Room A's own token still works for room A: the refusal is about the room, not the token.
    const own = await call<EndCallResponse>(`/calls/${roomA.room_name}/end`, {
      headers: tokenA,
      json: endBody,
    });
    expect(own.status).toBe(200);
    expect(lk.bodiesOf('DeleteRoom')).toEqual([{ room: roomA.room_name }]);
  });

  describe('the first authoritative end wins', () => {
    it("answers already_ended after the agent's own report ended the call, keeping the agent's end", async () => {
      const { room_name } = await issueToken('report-first');
      const endedAt = new Date(Date.now() - 5_000).toISOString();
      const report = await postAgentReport(room_name, {
        end_reason: 'max_duration',
        ended_by: 'system',
        ended_at: endedAt,
      });
      expect(report.status).toBe(201);
      fakeLiveKit();
      const res = await call<EndCallResponse>(`/calls/${room_name}/end`, {
        headers: ADMIN,
        json: endBody,
      });
      expect(res.status).toBe(200);
      expect(res.data.already_ended).toBe(true);
      expect(res.data.call).toMatchObject({
        status: 'ended',
        end_reason: 'max_duration',
        ended_by: 'system',
        end_source: 'agent',
        ended_at: endedAt,
        end_note: null,
      });
      // Whether LiveKit is asked again (a revived room) is not this rule; the ledger is.
      expect(await callRow(room_name)).toMatchObject({
        end_reason: 'max_duration',
        end_source: 'agent',
        ended_at: Date.parse(endedAt),
      });
    });

    // Seen in CI: the agent saw its room vanish and reported room_deleted before the end-call
    // request that deleted the room had written its end; the ledger then kept "room_deleted".
    it.each<[string, (room: string) => Promise<unknown>]>([
      [
        "the agent's report (room_deleted)",
        (room) => postAgentReport(room, { end_reason: 'room_deleted', ended_by: 'unknown' }),
      ],
      [
        "LiveKit's room_finished webhook",
        (room) =>
          sendWebhook({ event: 'room_finished', room: { name: room }, id: `EV_${room}_finished` }),
      ],
    ])(
      'a participant’s end stands over an end inferred from the deletion it caused: %s arriving mid-request',
      async (_what, inferEnd) => {
        const token = await issueToken('mid-request');
        const room = token.room_name;
        fakeLiveKit({ DeleteRoom: () => inferEnd(room).then(() => Response.json({})) });
        const res = await call<EndCallResponse>(`/calls/${room}/end`, {
          headers: { Authorization: `Bearer ${token.participant_token}` },
          json: endBody,
        });
        expect(res.status).toBe(200);
        expect(res.data.already_ended).toBe(false);
        expect(await callRow(room)).toMatchObject({
          status: 'ended',
          end_reason: 'api_end_call',
          ended_by: 'api',
          end_source: 'api',
          end_caller_kind: 'participant',
        });
      },
    );

    // Found in review: the first attempt deleted the room, the agent reported room_deleted, and
    // the ledger write failed (503); the caller's retry then found the call ended and recorded
    // nothing.
    it('a participant’s retry after its end failed to record stands over the room_deleted its first attempt caused', async () => {
      const token = await issueToken('retry-after-blip');
      const room = token.room_name;
      let deleted = 0;
      fakeLiveKit({
        DeleteRoom: () =>
          deleted++ === 0
            ? postAgentReport(room, { end_reason: 'room_deleted', ended_by: 'unknown' }).then(() =>
                Response.json({}),
              )
            : twirpError(404, 'not_found', 'requested room does not exist'),
      });
      const headers = { Authorization: `Bearer ${token.participant_token}` };
      // The call's object answers reads but not the end: the room is gone, the end unrecorded.
      const first = await call(
        `/calls/${room}/end`,
        { headers, json: endBody },
        { CALLS: failingObjects(['row', 'callerRecord']) },
      );
      expectError(first, 503, 'ledger_unavailable');
      expect((await callRow(room))!.end_reason).toBe('room_deleted');
      const retry = await call<EndCallResponse>(`/calls/${room}/end`, { headers, json: endBody });
      expect(retry.status).toBe(200);
      expect(retry.data.already_ended).toBe(false);
      expect(await callRow(room)).toMatchObject({
        end_reason: 'api_end_call',
        end_source: 'api',
        end_caller_kind: 'participant',
      });
    });

    it('a participant’s end long after an inferred end leaves that end as it was', async () => {
      const token = await issueToken('late-participant-end');
      const room = token.room_name;
      await seedCall.ended(room, { reason: 'room_deleted', at: Date.now() - 10 * 60_000 });
      fakeLiveKit({
        DeleteRoom: () => twirpError(404, 'not_found', 'requested room does not exist'),
      });
      const res = await call<EndCallResponse>(`/calls/${room}/end`, {
        headers: { Authorization: `Bearer ${token.participant_token}` },
        json: endBody,
      });
      expect(res.status).toBe(200);
      expect(res.data.already_ended).toBe(true);
      expect(await callRow(room)).toMatchObject({
        end_reason: 'room_deleted',
        end_source: 'webhook',
      });
    });

    it("keeps the API end when the agent's authoritative report arrives after it", async () => {
      const { room_name } = await issueToken('api-first');
      fakeLiveKit();
      const ended = await call<EndCallResponse>(`/calls/${room_name}/end`, {
        headers: ADMIN,
        json: endBody,
      });
      expect(ended.data.call.end_reason).toBe('api_end_call');
      const before = await callRow(room_name);
      const report = await postAgentReport(room_name, {
        end_reason: 'drain',
        ended_by: 'system',
        ended_at: new Date(Date.now() + 2_000).toISOString(),
      });
      // The report is stored (its transcript and hooks belong to the call) but names no new end.
      expect([report.status, report.data.accepted]).toEqual([201, true]);
      expect(await callRow(room_name)).toMatchObject({
        status: 'ended',
        end_reason: 'api_end_call',
        ended_by: 'api',
        end_source: 'api',
        ended_at: before!.ended_at,
        end_note: 'support closed the ticket',
      });
    });
  });

  it('answers 404 for an unknown room', async () => {
    expectError(
      await call('/calls/no-such-room/end', { headers: ADMIN, json: endBody }),
      404,
      'call_not_found',
    );
  });

  it('answers 400 for a bad mode, naming the field', async () => {
    const { room_name } = await issueToken('m');
    const res = await call(`/calls/${room_name}/end`, {
      headers: ADMIN,
      json: { mode: 'explode' },
    });
    expect(expectError(res, 400, 'invalid_field').message).toContain('mode');
  });

  it('answers 400 for a bad room name', async () => {
    const res = await call(`/calls/${encodeURIComponent('bad room!')}/end`, {
      headers: ADMIN,
      json: endBody,
    });
    expectError(res, 400, 'invalid_field');
  });

  it('treats LiveKit "not found" as already gone: success, never a 500', async () => {
    const { room_name } = await issueToken('nf');
    fakeLiveKit({
      DeleteRoom: () => twirpError(404, 'not_found', 'requested room does not exist'),
    });
    const res = await call<EndCallResponse>(`/calls/${room_name}/end`, {
      headers: ADMIN,
      json: endBody,
    });
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
    expectError(res, status, code);
    if (status === 503) expect(res.headers.get('retry-after')).toBe('5');
    expect((await callRow(room_name))!.status).toBe('open');
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
    const res = await call<EndCallResponse>(`/calls/${room_name}/end`, {
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
  it('dispatches once when two requests race: one creates, the other answers the same dispatch', async () => {
    let creates = 0;
    const lk = fakeLiveKit({
      ListRooms: (b) => Response.json({ rooms: [{ name: b.names[0], sid: 'RM_race' }] }),
      ListDispatch: () => Response.json({ agentDispatches: [] }),
      CreateDispatch: (b) => {
        creates += 1;
        return Response.json({ id: `AD_race_${creates}`, agentName: b.agentName, room: b.room });
      },
    });
    const both = await Promise.all(
      [ADMIN, APP].map((headers) =>
        call<DispatchResponse>('/calls/sip-race/dispatch', { headers, method: 'POST' }),
      ),
    );
    expect(lk.methods().filter((m) => m === 'CreateDispatch')).toHaveLength(1);
    expect(both.map((r) => r.data.dispatch_id)).toEqual(['AD_race_1', 'AD_race_1']);
    expect(both.map((r) => r.data.created).sort()).toEqual([false, true]);
  });

  it('takes over a dispatch claim left by a request that died midway', async () => {
    fakeLiveKit({
      ListRooms: (b) => Response.json({ rooms: [{ name: b.names[0], sid: 'RM_stale' }] }),
      ListDispatch: () => Response.json({ agentDispatches: [] }),
      CreateDispatch: (b) =>
        Response.json({ id: 'AD_stale', agentName: b.agentName, room: b.room }),
    });
    await call('/calls/sip-stale/dispatch', { headers: ADMIN, method: 'POST' });
    await seedCall.abandonedDispatchClaim('sip-stale', 1000);
    const retry = await call<DispatchResponse>('/calls/sip-stale/dispatch', {
      headers: ADMIN,
      method: 'POST',
    });
    expect([retry.status, retry.data.dispatch_id]).toEqual([201, 'AD_stale']);
  });

  it('lets a retry dispatch after a dispatch that LiveKit refused', async () => {
    let fail = true;
    fakeLiveKit({
      ListRooms: (b) => Response.json({ rooms: [{ name: b.names[0], sid: 'RM_retry' }] }),
      ListDispatch: () => Response.json({ agentDispatches: [] }),
      CreateDispatch: (b) =>
        fail
          ? twirpError(500, 'internal', 'boom')
          : Response.json({ id: 'AD_retry', agentName: b.agentName, room: b.room }),
    });
    expectError(
      await call('/calls/sip-retry/dispatch', { headers: ADMIN, method: 'POST' }),
      502,
      'livekit_error',
    );
    fail = false;
    const retry = await call<DispatchResponse>('/calls/sip-retry/dispatch', {
      headers: ADMIN,
      method: 'POST',
    });
    expect([retry.status, retry.data.dispatch_id]).toEqual([201, 'AD_retry']);
  });

  it('dispatches once: a retry finds the existing dispatch instead of adding a second agent', async () => {
    const dispatches: { id: string; agentName: string; room: string }[] = [];
    const lk = fakeLiveKit({
      ListRooms: (b) => Response.json({ rooms: [{ name: b.names[0], sid: 'RM_1' }] }),
      ListDispatch: () => Response.json({ agentDispatches: dispatches }),
      CreateDispatch: (b) => {
        dispatches.push({ id: 'AD_1', agentName: b.agentName, room: b.room });
        return Response.json(dispatches[0]);
      },
    });
    const first = await call<DispatchResponse>('/calls/sip-room-1/dispatch', {
      headers: ADMIN,
      method: 'POST',
    });
    expect([first.status, first.data.dispatch_id, first.data.created]).toEqual([201, 'AD_1', true]);
    const [created] = lk.bodiesOf('CreateDispatch');
    expect(created!.agentName).toBe('voice-agent');
    const opened = await openDispatchMetadata(
      created!.metadata,
      'sip-room-1',
      testEnv.LIVEKIT_API_SECRET,
    );
    expect(opened).toMatchObject({ ok: true, metadata: { end_mode: 'end_for_all' } });
    const second = await call<DispatchResponse>('/calls/sip-room-1/dispatch', {
      headers: APP,
      json: {},
    });
    expect([second.status, second.data.created]).toEqual([200, false]);
    expect(lk.methods().filter((m) => m === 'CreateDispatch')).toHaveLength(1);
  });

  it('answers 404 when LiveKit has no such room', async () => {
    fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    expectError(
      await call('/calls/ghost/dispatch', { headers: ADMIN, json: {} }),
      404,
      'room_not_found',
    );
  });

  it('answers 400 for an agent that is not allow-listed', async () => {
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    expectError(
      await call('/calls/ghost/dispatch', { headers: ADMIN, json: { agent_name: 'nope' } }),
      400,
      'unknown_agent',
    );
    expect(lk.calls).toEqual([]);
  });

  it('answers 403 to end users', async () => {
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    expectError(
      await call('/calls/ghost/dispatch', { headers: await bearerFor('u'), json: {} }),
      403,
      'forbidden',
    );
    expect(lk.calls).toEqual([]);
  });
});

describe('backend keys are compared whole', () => {
  const near = (key: string) => [
    ['with one more character', `${key}x`],
    ['with its last character changed', `${key.slice(0, -1)}${key.endsWith('Z') ? 'Y' : 'Z'}`],
    ['without its last character', key.slice(0, -1)],
  ];
  // POST /calls/:room/dispatch takes either key: a key taken for the real one would reach
  // LiveKit (404 room_not_found from the fake) instead of the 401.
  it.each([
    ...near(testEnv.ADMIN_API_KEY).map(([how, key]) => [`the admin key ${how}`, key!]),
    ...near(testEnv.APP_API_KEY).map(([how, key]) => [`the app key ${how}`, key!]),
  ])('refuses %s: 401 invalid_credential', async (_name, key) => {
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    const res = await call('/calls/near-key/dispatch', {
      headers: { Authorization: `Bearer ${key}` },
      json: {},
    });
    expectError(res, 401, 'invalid_credential');
    expect(lk.calls).toEqual([]);
  });

  it('refuses the admin key with one more character on the admin-only call list', async () => {
    expectError(
      await call('/calls', { headers: { Authorization: `Bearer ${testEnv.ADMIN_API_KEY}0` } }),
      401,
      'invalid_credential',
    );
  });
});

describe('GET /calls/:room', () => {
  it('shows the call to its participant: the caller view (test/edge/call-views.test.ts)', async () => {
    const { room_name } = await issueToken('viewer');
    const mine = await call<CallerView>(`/calls/${room_name}`, {
      headers: await bearerFor('viewer'),
    });
    expect(mine.status).toBe(200);
    expect(mine.data).toMatchObject({
      room: room_name,
      status: 'open',
      end_reason: null,
      caller: { identity: 'viewer', joined_at: null },
    });
    expect(mine.data).not.toHaveProperty('report');
  });

  it('shows the call to the admin: its state, its participants and its report', async () => {
    const { room_name } = await issueToken('viewer-a');
    const row = (await callRow(room_name))!;
    const res = await call<CallView>(`/calls/${room_name}`, { headers: ADMIN });
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({
      room: room_name,
      status: 'open',
      agent_name: 'voice-agent',
      end_mode: 'end_for_all',
      created_at: new Date(row.created_at).toISOString(),
      deadline_at: new Date(row.deadline_at).toISOString(),
      started_at: null,
      ended_at: null,
      end_reason: null,
      ended_by: null,
      report: null,
    });
    expect(res.data.participants).toEqual([
      expect.objectContaining({ identity: 'viewer-a', joined_at: null, left_at: null }),
    ]);
    expect(Date.parse(res.data.participants![0]!.issued_at!)).toBeGreaterThan(0);
  });

  it('shows the admin an ended call with its end and the agent report', async () => {
    const { room_name } = await issueToken('viewer-c');
    const transcript = [
      { role: 'assistant' as const, text: 'Hello!', at: new Date().toISOString() },
    ];
    await postAgentReport(room_name, {
      end_reason: 'idle_timeout',
      ended_by: 'system',
      transcript,
    });
    const res = await call<CallView>(`/calls/${room_name}`, { headers: ADMIN });
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({
      room: room_name,
      status: 'ended',
      end_reason: 'idle_timeout',
      ended_by: 'system',
      end_source: 'agent',
      report: { end_reason: 'idle_timeout', transcript },
    });
    expect(res.data.duration_seconds).toBeGreaterThan(0);
  });

  it('does not show the call to anyone else', async () => {
    const { room_name } = await issueToken('viewer-b');
    expectError(
      await call(`/calls/${room_name}`, { headers: await bearerFor('nosy') }),
      403,
      'not_a_participant',
    );
  });
});

describe('GET /calls', () => {
  it('pages through all calls for the admin, each call once', async () => {
    for (const who of ['l1', 'l2', 'l3']) await issueToken(who);
    const page1 = await call<CallList>('/calls?limit=2', { headers: ADMIN });
    expect(page1.data.calls).toHaveLength(2);
    expect(page1.data.next_cursor).toBeTruthy();
    const page2 = await call<CallList>(`/calls?limit=2&cursor=${page1.data.next_cursor}`, {
      headers: ADMIN,
    });
    const rooms = [...page1.data.calls, ...page2.data.calls].map((c) => c.room);
    expect(new Set(rooms).size).toBe(rooms.length);
  });

  it('filters by status: open calls, calls that ended, and tokens never used', async () => {
    const open = await issueToken('still-talking');
    const ended = await issueToken('hung-up');
    const unused = await issueToken('never-joined');
    await seedCall.ended(ended.room_name, { reason: 'participant_left' });
    await seedCall.ended(unused.room_name, {
      reason: 'not_joined',
      endedBy: 'system',
      source: 'cron',
    });
    const rooms = async (status: string) =>
      (
        await call<CallList>(`/calls?status=${status}&limit=100`, { headers: ADMIN })
      ).data.calls.map((c) => c.room);
    const openRooms = await rooms('open');
    const endedRooms = await rooms('ended');
    const unusedRooms = await rooms('not_joined');
    expect(openRooms).toContain(open.room_name);
    expect(openRooms).not.toContain(ended.room_name);
    expect(endedRooms).toContain(ended.room_name);
    expect(endedRooms).not.toContain(unused.room_name);
    expect(unusedRooms).toEqual(expect.arrayContaining([unused.room_name]));
    expect(unusedRooms).not.toContain(ended.room_name);
  });

  it('pages a filtered list without repeating a call', async () => {
    for (const who of ['f1', 'f2', 'f3']) await issueToken(who);
    const page1 = await call<CallList>('/calls?status=open&limit=2', { headers: ADMIN });
    const page2 = await call<CallList>(
      `/calls?status=open&limit=2&cursor=${page1.data.next_cursor}`,
      { headers: ADMIN },
    );
    const rooms = [...page1.data.calls, ...page2.data.calls].map((c) => c.room);
    expect(new Set(rooms).size).toBe(rooms.length);
    expect([...page1.data.calls, ...page2.data.calls].every((c) => c.status === 'open')).toBe(true);
  });

  it.each([
    ['a limit over 100', '/calls?limit=500', 'limit'],
    ['a cursor it never returned', '/calls?cursor=%%%', 'cursor'],
    ['an unknown status', '/calls?status=maybe', 'status'],
  ])('answers 400 for %s, naming the field', async (_name, path, field) => {
    const res = await call(path, { headers: ADMIN });
    expect(expectError(res, 400, 'invalid_field').message).toContain(field);
  });

  it('is for the admin only', async () => {
    expectError(await call('/calls', { headers: await bearerFor('l1') }), 403, 'forbidden');
  });
});
