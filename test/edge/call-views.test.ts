import { afterEach, describe, expect, it, vi } from 'vitest';
import { END_REASONS } from '../../wire-contract/index.ts';
import {
  ADMIN,
  APP,
  bearerFor,
  call,
  expectError,
  fakeLiveKit,
  issueToken,
  postAgentReport,
  seedCall,
  type CallView,
  type TokenResponse,
  atCall,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

const fresh = (who: string) => `${who}-${crypto.randomUUID().slice(0, 8)}`;
const bearer = (token: TokenResponse) => ({ Authorization: `Bearer ${token.participant_token}` });

// What only operators may read, each a string a leak would carry into the caller's answer.
const STAFF = 'staff.member@example.com';
const OPERATOR_NOTE = 'refund flagged for review by the fraud team';
const PROVIDER_ERROR = 'POST https://llm.internal.example/v1?api_key=sk-live-0xdeadbeef failed';
const HOOK_ERROR = 'connect ECONNREFUSED crm.internal.example:5432';
const SPOKEN = 'my card number is 4111 1111 1111 1111';
const OPERATOR_ONLY = [STAFF, OPERATOR_NOTE, PROVIDER_ERROR, HOOK_ERROR, SPOKEN, '98765'];

/**
 * A call as an operator sees it at its fullest: a caller, a staff member the backend added, an
 * operator's end with a note, and the agent's report with a transcript, errors, hooks and usage.
 */
async function fullCall() {
  const caller = await issueToken(fresh('caller'));
  const staff = await call('/token', {
    headers: APP,
    json: { room_name: caller.room_name, participant_identity: STAFF },
  });
  expect(staff.status).toBe(201);
  fakeLiveKit();
  const ended = await call(`/calls/${caller.room_name}/end`, {
    headers: ADMIN,
    json: { mode: 'end_for_all', reason: OPERATOR_NOTE },
  });
  expect(ended.status).toBe(200);
  const at = new Date().toISOString();
  const report = await postAgentReport(caller.room_name, {
    transcript: [{ role: 'user', text: SPOKEN, at }],
    errors: [{ at, source: 'llm', message: PROVIDER_ERROR }],
    hooks: [{ name: 'crm', status: 'error', duration_ms: 12, error: HOOK_ERROR }],
    usage: {
      llm_prompt_tokens: 98765,
      llm_completion_tokens: 1,
      tts_characters: 1,
      stt_seconds: 1,
    },
  });
  expect(report.status).toBe(201);
  return caller;
}

/** The caller view: the call's status, its end in words, its times, and the caller's own row. */
function expectCallerView(body: unknown, room: string) {
  const text = JSON.stringify(body);
  for (const secret of OPERATOR_ONLY) expect(text).not.toContain(secret);
  const view = body as Record<string, unknown>;
  for (const key of ['participants', 'report', 'end_note', 'end_mode', 'deadline_at', 'agent_name'])
    expect(view).not.toHaveProperty(key);
  expect(view).toMatchObject({
    room,
    status: 'ended',
    end_reason: 'api_end_call',
    end_message: END_REASONS.api_end_call.clientMessage,
    ended_by: 'api',
  });
  expect(Date.parse(view.ended_at as string)).toBeGreaterThan(0);
}

describe('GET /calls/:room: callers get the caller view, the admin key the operator view', () => {
  it("shows a participant (its own LiveKit token) its call's status and end in words, and nothing only operators may read", async () => {
    const caller = await fullCall();
    const res = await call(`/calls/${caller.room_name}`, { headers: bearer(caller) });
    expect(res.status).toBe(200);
    expectCallerView(res.data, caller.room_name);
    // Its own row, and only its own.
    expect(res.data).toMatchObject({ caller: { identity: caller.participant_identity } });
    expect(
      Date.parse((res.data as { caller: { issued_at: string } }).caller.issued_at),
    ).toBeGreaterThan(0);
  });

  it('shows a signed-in user (its app JWT) the same caller view', async () => {
    const caller = await fullCall();
    const res = await call(`/calls/${caller.room_name}`, {
      headers: await bearerFor(caller.participant_identity),
    });
    expect(res.status).toBe(200);
    expectCallerView(res.data, caller.room_name);
    expect(res.data).toMatchObject({ caller: { identity: caller.participant_identity } });
  });

  it('shows the app key (a backend) the caller view of any call, with no caller row', async () => {
    const caller = await fullCall();
    const res = await call(`/calls/${caller.room_name}`, { headers: APP });
    expect(res.status).toBe(200);
    expectCallerView(res.data, caller.room_name);
    expect(res.data).not.toHaveProperty('caller');
  });

  it('shows the admin key everything: participants, the report, the note and who wrote it', async () => {
    const caller = await fullCall();
    const res = await call<CallView>(`/calls/${caller.room_name}`, {
      headers: ADMIN,
    });
    expect(res.status).toBe(200);
    expect(res.data.participants!.map((p) => p.identity)).toEqual([
      caller.participant_identity,
      STAFF,
    ]);
    expect(res.data.report).toMatchObject({
      errors: [{ message: PROVIDER_ERROR }],
      hooks: [{ error: HOOK_ERROR }],
      usage: { llm_prompt_tokens: 98765 },
      transcript: [{ text: SPOKEN }],
    });
    expect(res.data).toMatchObject({
      end_note: OPERATOR_NOTE,
      end_caller: { kind: 'admin', identity: null },
    });
  });
});

describe('POST /calls/:room/end: the answer is the caller view, the note says who wrote it', () => {
  async function twoPartyCall() {
    const caller = await issueToken(fresh('ender'));
    expect(
      (
        await call('/token', {
          headers: APP,
          json: { room_name: caller.room_name, participant_identity: STAFF },
        })
      ).status,
    ).toBe(201);
    return caller;
  }
  const operatorView = async (room: string) =>
    (await call<CallView>(`/calls/${room}`, { headers: ADMIN })).data;

  type Credential = (token: TokenResponse) => Promise<HeadersInit>;
  it.each<[string, 'participant' | 'user', Credential]>([
    ['its LiveKit token', 'participant', async (t) => bearer(t)],
    ['its app JWT', 'user', (t) => bearerFor(t.participant_identity)],
  ])(
    'a caller ending with %s gets the caller view; its note reaches operators as its own',
    async (_name, kind, credential) => {
      const caller = await twoPartyCall();
      fakeLiveKit();
      const res = await call<{ already_ended: boolean; call: unknown }>(
        `/calls/${caller.room_name}/end`,
        { headers: await credential(caller), json: { mode: 'end_for_all', reason: 'rude agent' } },
      );
      expect(res.status).toBe(200);
      expect(res.data.already_ended).toBe(false);
      expect(JSON.stringify(res.data)).not.toContain(STAFF);
      expectCallerView(res.data.call, caller.room_name);
      expect(await operatorView(caller.room_name)).toMatchObject({
        ended_by: 'api',
        end_note: 'rude agent',
        end_caller: { kind, identity: caller.participant_identity },
      });
    },
  );

  it('the app key ending gets the caller view; its note is the backend’s', async () => {
    const caller = await twoPartyCall();
    fakeLiveKit();
    const res = await call<{ call: unknown }>(`/calls/${caller.room_name}/end`, {
      headers: APP,
      json: { mode: 'end_for_all', reason: 'ticket closed' },
    });
    expect(res.status).toBe(200);
    expectCallerView(res.data.call, caller.room_name);
    expect(await operatorView(caller.room_name)).toMatchObject({
      end_note: 'ticket closed',
      end_caller: { kind: 'app', identity: null },
    });
  });

  it('a caller asking again after the end gets the caller view, and the recorded note stays the operator’s', async () => {
    const caller = await fullCall();
    const res = await call<{ already_ended: boolean; call: unknown }>(
      `/calls/${caller.room_name}/end`,
      { headers: bearer(caller), json: { mode: 'end_for_all', reason: 'me too' } },
    );
    expect(res.data.already_ended).toBe(true);
    expectCallerView(res.data.call, caller.room_name);
    expect(await operatorView(caller.room_name)).toMatchObject({
      end_note: OPERATOR_NOTE,
      end_caller: { kind: 'admin', identity: null },
    });
  });

  it('remove_agent answers a caller the caller view', async () => {
    const caller = await twoPartyCall();
    fakeLiveKit({
      ListParticipants: () =>
        Response.json({ participants: [{ identity: 'agent-AJ_1', kind: 'AGENT' }] }),
    });
    const res = await call<{ removed_agents: string[]; call: Record<string, unknown> }>(
      `/calls/${caller.room_name}/end`,
      { headers: bearer(caller), json: { mode: 'remove_agent' } },
    );
    expect(res.status).toBe(200);
    expect(JSON.stringify(res.data)).not.toContain(STAFF);
    expect(res.data.call).toMatchObject({ status: 'open', end_reason: null, end_message: null });
    expect(res.data.call).not.toHaveProperty('participants');
  });

  it("an operator's end without a note does not keep the edge's earlier note under the operator's name", async () => {
    const caller = await issueToken(fresh('late'));
    await seedCall.ended(caller.room_name, { reason: 'not_joined', source: 'cron' });
    await atCall(
      caller.room_name,
      'UPDATE calls SET end_note = ?2 WHERE room = ?1',
      caller.room_name,
      'token expired unused',
    );
    fakeLiveKit();
    const res = await call(`/calls/${caller.room_name}/end`, {
      headers: ADMIN,
      json: { mode: 'end_for_all' },
    });
    expect(res.status).toBe(200);
    expect(await operatorView(caller.room_name)).toMatchObject({
      end_reason: 'api_end_call',
      end_note: null,
      end_caller: { kind: 'admin', identity: null },
    });
  });

  type Ender = [string, (t: TokenResponse) => Promise<HeadersInit> | HeadersInit];
  it.each<Ender>([
    ['a participant (its LiveKit token)', (t) => bearer(t)],
    ['a signed-in user (its app JWT)', (t) => bearerFor(t.participant_identity)],
    ['the app key', () => APP],
  ])(
    'an end asked by %s for a call whose end was only inferred closes the room but rewrites nothing: the agent’s report still corrects it',
    async (_name, credential) => {
      const caller = await issueToken(fresh('inferred'));
      await seedCall.ended(caller.room_name, { reason: 'participant_left', source: 'webhook' });
      await atCall(
        caller.room_name,
        'UPDATE calls SET end_note = ?2 WHERE room = ?1',
        caller.room_name,
        'room finished, agent unheard from',
      );
      const before = await operatorView(caller.room_name);
      const lk = fakeLiveKit();
      const res = await call<{ already_ended: boolean; call: Record<string, unknown> }>(
        `/calls/${caller.room_name}/end`,
        { headers: await credential(caller), json: { mode: 'end_for_all', reason: 'not me' } },
      );
      expect(res.status).toBe(200);
      expect(res.data.already_ended).toBe(true);
      expect(res.data.call).toMatchObject({ status: 'ended', end_reason: 'participant_left' });
      expect(res.data.call).not.toHaveProperty('end_note');
      // The room goes all the same: a still-valid token may have recreated it.
      expect(lk.bodiesOf('DeleteRoom')).toEqual([{ room: caller.room_name }]);
      expect(await operatorView(caller.room_name)).toEqual(before);
      // The agent's authoritative report, arriving later, still says how the call really ended.
      expect((await postAgentReport(caller.room_name)).status).toBe(201);
      expect(await operatorView(caller.room_name)).toMatchObject({
        end_reason: 'agent_end_call',
        ended_by: 'agent',
      });
    },
  );

  it('still refuses everyone else', async () => {
    const caller = await twoPartyCall();
    expectError(
      await call(`/calls/${caller.room_name}`, { headers: await bearerFor(fresh('nosy')) }),
      403,
      'not_a_participant',
    );
  });
});
