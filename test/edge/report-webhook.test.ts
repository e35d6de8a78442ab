import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isFinalReportRefusal, type CallReport } from '../../wire-contract/index.ts';
import { callReportFor } from '../support/call-report-fixture.ts';
import {
  ADMIN,
  call,
  expectError,
  issueToken,
  callRow,
  seedCall,
  sendWebhook,
  signAsLiveKit,
  type CallView,
  type ReportResponse,
  atCall,
  archiveRow,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

/** A minute's call with something said, used and run, for the view to show. */
function reportFor(room: string, overrides: Partial<CallReport> = {}): CallReport {
  const now = Date.now();
  return callReportFor(room, {
    started_at: new Date(now - 60_000).toISOString(),
    ended_at: new Date(now).toISOString(),
    duration_ms: 60_000,
    transcript: [
      { role: 'assistant', text: 'Hello!', at: new Date(now - 59_000).toISOString() },
      { role: 'user', text: 'Goodbye', at: new Date(now - 2_000).toISOString() },
    ],
    usage: {
      llm_prompt_tokens: 120,
      llm_completion_tokens: 30,
      tts_characters: 42,
      stt_seconds: 3.5,
    },
    hooks: [{ name: 'report', status: 'ok', duration_ms: 12 }],
    ...overrides,
  });
}

async function postReport(room: string, body: string, auth?: string) {
  return call<ReportResponse>(`/calls/${room}/report`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(auth ? { Authorization: auth } : {}) },
    body,
  });
}

describe('POST /calls/:room/report', () => {
  it('accepts a signed report once, closes the call and shows the transcript and usage', async () => {
    const { room_name } = await issueToken('r1');
    const body = JSON.stringify(reportFor(room_name));
    const first = await postReport(room_name, body, await signAsLiveKit(body));
    expect([first.status, first.data.accepted]).toEqual([201, true]);
    const view = await call<CallView>(`/calls/${room_name}`, { headers: ADMIN });
    expect(view.data).toMatchObject({
      status: 'ended',
      end_reason: 'agent_end_call',
      ended_by: 'agent',
      end_source: 'agent',
    });
    expect(view.data.report!.transcript.map((t) => t.text)).toEqual(['Hello!', 'Goodbye']);
    expect(view.data.report!.usage.llm_prompt_tokens).toBe(120);
    // A retry (same call id), even with a different reason, changes nothing.
    const retryBody = JSON.stringify(
      reportFor(room_name, { end_reason: 'error', ended_by: 'system' }),
    );
    const retry = await postReport(
      room_name,
      retryBody,
      `Bearer ${await signAsLiveKit(retryBody)}`,
    );
    expect([retry.status, retry.data.duplicate]).toEqual([200, true]);
    expect((await callRow(room_name))!.end_reason).toBe('agent_end_call');
  });

  it('closes the call on a retried report whose first attempt was stored but not applied', async () => {
    const { room_name } = await issueToken('half-applied');
    const body = JSON.stringify(reportFor(room_name));
    await postReport(room_name, body, await signAsLiveKit(body));
    await atCall(
      room_name,
      "UPDATE calls SET status = 'open', end_reason = NULL, end_strength = NULL WHERE room = ?",
      room_name,
    );
    const retry = await postReport(room_name, body, await signAsLiveKit(body));
    expect(retry.status).toBe(200);
    expect((await callRow(room_name))!).toMatchObject({
      status: 'ended',
      end_reason: 'agent_end_call',
    });
  });

  it.each([
    ['no signature', async (_b: string) => undefined, 'missing_signature'],
    [
      'a tampered body',
      async (b: string) => signAsLiveKit(b.replace('Goodbye', 'Bye!!!!')),
      'body_hash_mismatch',
    ],
    [
      'the wrong secret',
      async (b: string) => signAsLiveKit(b, { secret: 'another-secret-another-secret' }),
      'bad_signature',
    ],
    ['another key', async (b: string) => signAsLiveKit(b, { key: 'otherkey' }), 'bad_signature'],
    ['an expired signature', async (b: string) => signAsLiveKit(b, { ttl: -60 }), 'bad_signature'],
  ])('rejects %s with 401 and leaves the ledger unchanged', async (_name, sign, problem) => {
    const { room_name } = await issueToken(`r-${problem}`);
    const body = JSON.stringify(reportFor(room_name));
    const res = await postReport(room_name, body, await sign(body));
    expect(expectError(res, 401, 'invalid_signature').message).toContain(problem);
    expect((await callRow(room_name))!.status).toBe('open');
  });

  it('rejects a signed but invalid report, naming the field', async () => {
    const { room_name } = await issueToken('r2');
    const bad = JSON.stringify({ ...reportFor(room_name), end_reason: 'bored' });
    const res = await postReport(room_name, bad, await signAsLiveKit(bad));
    expect(expectError(res, 400, 'invalid_field').message).toContain('end_reason');
  });

  it('rejects a signed report for another room', async () => {
    const { room_name } = await issueToken('r2b');
    const other = JSON.stringify(reportFor('some-other-room'));
    const res = await postReport(room_name, other, await signAsLiveKit(other));
    expect(expectError(res, 400, 'invalid_field').message).toContain('room');
    expect((await callRow(room_name))!.status).toBe('open');
  });

  it('admits the agent of a room the edge never issued, then refuses its report for good: 404 call_not_found', async () => {
    const room = `sip-${crypto.randomUUID()}`;
    const ask = JSON.stringify({ room, room_sid: 'RM_sip', job_id: 'AJ_sip' });
    const admitted = await call<{ admit: boolean }>(`/calls/${room}/admit`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', Authorization: await signAsLiveKit(ask) },
      body: ask,
    });
    expect(admitted.data.admit).toBe(true);
    const body = JSON.stringify(reportFor(room));
    const res = await postReport(room, body, await signAsLiveKit(body));
    expectError(res, 404, 'call_not_found');
    // The one 404 the agent takes as final (any other 404 waits in its outbox), and nothing was kept.
    expect(isFinalReportRefusal(404, 'call_not_found')).toBe(true);
    expect(await callRow(room)).toBeNull();
  });

  it('lets an authoritative agent reason replace an inferred webhook end', async () => {
    const { room_name } = await issueToken('r3');
    await sendWebhook({
      event: 'room_finished',
      room: { name: room_name, sid: 'RM_x' },
      id: `EV_${room_name}`,
    });
    expect((await callRow(room_name))!.end_source).toBe('webhook');
    const body = JSON.stringify(reportFor(room_name));
    await postReport(room_name, body, await signAsLiveKit(body));
    expect(await callRow(room_name)).toMatchObject({
      end_reason: 'agent_end_call',
      end_source: 'agent',
    });
  });

  it("keeps an API end when the agent's report only saw the room go", async () => {
    const { room_name } = await issueToken('r4');
    await seedCall.ended(room_name, {
      reason: 'api_end_call',
      endedBy: 'api',
      source: 'api',
      strength: 1,
      at: 1,
    });
    const seen = JSON.stringify(
      reportFor(room_name, { end_reason: 'room_deleted', ended_by: 'unknown' }),
    );
    await postReport(room_name, seen, await signAsLiveKit(seen));
    expect((await callRow(room_name))!.end_reason).toBe('api_end_call');
  });
});

describe('POST /livekit/webhook', () => {
  it('tracks start, participants and the end; room_finished closes a call the agent never reported', async () => {
    const { room_name } = await issueToken('w1');
    const room = { name: room_name, sid: 'RM_w1' };
    expect((await sendWebhook({ event: 'room_started', room, id: 'EV_1' })).data.outcome).toBe(
      'applied',
    );
    await sendWebhook({
      event: 'participant_joined',
      room,
      participant: { identity: 'w1', kind: 'STANDARD' },
      id: 'EV_2',
    });
    await sendWebhook({
      event: 'participant_joined',
      room,
      participant: { identity: 'agent-1', kind: 'AGENT' },
      id: 'EV_3',
    });
    await sendWebhook({
      event: 'participant_left',
      room,
      participant: { identity: 'w1', kind: 'STANDARD', disconnectReason: 'CLIENT_INITIATED' },
      id: 'EV_4',
    });
    await sendWebhook({ event: 'room_finished', room, id: 'EV_5' });
    const view = await call<CallView>(`/calls/${room_name}`, { headers: ADMIN });
    expect(view.data).toMatchObject({
      status: 'ended',
      room_sid: 'RM_w1',
      end_reason: 'participant_left',
      end_source: 'webhook',
    });
    const participant = (identity: string) =>
      view.data.participants!.find((p) => p.identity === identity)!;
    expect(participant('agent-1').kind).toBe('AGENT');
    expect(participant('w1').disconnect_reason).toBe('CLIENT_INITIATED');
    expect(view.data.started_at).toBeTruthy();
  });

  it('names the end "error" when the agent vanished without a clean disconnect', async () => {
    const { room_name } = await issueToken('w2');
    const room = { name: room_name, sid: 'RM_w2' };
    await sendWebhook({
      event: 'participant_left',
      room,
      participant: { identity: 'agent-2', kind: 'AGENT', disconnectReason: 'CONNECTION_TIMEOUT' },
      id: 'EV_w2a',
    });
    await sendWebhook({ event: 'room_finished', room, id: 'EV_w2b' });
    expect((await callRow(room_name))!.end_reason).toBe('error');
  });

  it('changes nothing on a repeated event (every effect is idempotent; no id is kept)', async () => {
    const { room_name } = await issueToken('w3');
    const event = { event: 'room_started', room: { name: room_name, sid: 'RM_w3' }, id: 'EV_dup' };
    expect((await sendWebhook(event)).data.outcome).toBe('applied');
    const once = await callRow(room_name);
    expect((await sendWebhook(event)).data.outcome).toBe('applied');
    expect(await callRow(room_name)).toEqual(once);
  });

  it("takes a Bearer-prefixed signature, as a report's (one check for both)", async () => {
    const { room_name } = await issueToken('w3b');
    const res = await sendWebhook(
      { event: 'room_started', room: { name: room_name, sid: 'RM_w3b' }, id: 'EV_w3b' },
      async (b) => `Bearer ${await signAsLiveKit(b)}`,
    );
    expect(res.data.outcome).toBe('applied');
  });

  it('refuses a signed body that is not a webhook event with a 400 naming it, not a 401', async () => {
    const body = '{"event": 42';
    const res = await call('/livekit/webhook', {
      method: 'POST',
      headers: {
        'content-type': 'application/webhook+json',
        Authorization: await signAsLiveKit(body),
      },
      body,
    });
    expectError(res, 400, 'malformed_json');
  });

  it('never takes a track event to D1', async () => {
    const { room_name } = await issueToken('w3t');
    const res = await sendWebhook({
      event: 'track_published',
      room: { name: room_name, sid: 'RM_t' },
      id: 'EV_t',
    });
    expect(res.data.outcome).toBe('ignored');
  });

  it('ignores rooms the edge does not track', async () => {
    expect(
      (await sendWebhook({ event: 'room_started', room: { name: 'elsewhere' }, id: 'EV_other' }))
        .data.outcome,
    ).toBe('untracked');
  });

  type Delivery = (body: string) => Promise<{ body: string; authorization?: string }>;
  it.each<[string, Delivery, string]>([
    [
      'a tampered body',
      async (b) => ({
        body: b.replace('room_finished', 'room_started'),
        authorization: await signAsLiveKit(b),
      }),
      'body_hash_mismatch',
    ],
    [
      'a signature with the wrong secret',
      async (b) => ({
        body: b,
        authorization: await signAsLiveKit(b, { secret: 'wrong-secret-wrong-secret' }),
      }),
      'bad_signature',
    ],
    [
      'an expired signature',
      async (b) => ({ body: b, authorization: await signAsLiveKit(b, { ttl: -60 }) }),
      'bad_signature',
    ],
    ['no signature', async (b) => ({ body: b }), 'missing Authorization'],
  ])('rejects %s with 401, the ledger unchanged', async (_name, deliver, problem) => {
    // One caller per case: five open calls of one caller would pass the open-call cap.
    const { room_name } = await issueToken(`w4-${problem.replace(/\W/g, '')}`);
    const signed = JSON.stringify({
      event: 'room_finished',
      room: { name: room_name },
      id: `EV_${room_name}`,
    });
    const { body, authorization } = await deliver(signed);
    const res = await call('/livekit/webhook', {
      method: 'POST',
      headers: authorization
        ? { 'content-type': 'application/webhook+json', Authorization: authorization }
        : {},
      body,
    });
    expect(expectError(res, 401, 'invalid_signature').message).toContain(problem);
    expect((await callRow(room_name))!.status).toBe('open');
  });

  it('ends up as if each event arrived once and in order, whatever order and repeats LiveKit delivers', async () => {
    const t0 = Math.floor(Date.now() / 1000) - 100;
    const script = (room: string, tag: string) => {
      const r = { name: room, sid: `RM_${tag}` };
      return [
        { event: 'room_started', room: r, createdAt: String(t0) },
        {
          event: 'participant_joined',
          room: r,
          participant: { identity: 'caller', kind: 'STANDARD' },
          createdAt: String(t0 + 1),
        },
        {
          event: 'participant_joined',
          room: r,
          participant: { identity: 'agent-x', kind: 'AGENT' },
          createdAt: String(t0 + 2),
        },
        {
          event: 'participant_left',
          room: r,
          participant: {
            identity: 'caller',
            kind: 'STANDARD',
            disconnectReason: 'CLIENT_INITIATED',
          },
          createdAt: String(t0 + 10),
        },
        {
          event: 'participant_left',
          room: r,
          participant: { identity: 'agent-x', kind: 'AGENT', disconnectReason: 'CLIENT_INITIATED' },
          createdAt: String(t0 + 11),
        },
        { event: 'room_finished', room: r, createdAt: String(t0 + 12) },
      ].map((e, i) => ({ ...e, id: `EV_${tag}_${i}` }));
    };
    const outcome = async (room: string) => {
      const { data } = await call<CallView>(`/calls/${room}`, { headers: ADMIN });
      const { status, end_reason, end_source, started_at, ended_at, room_sid } = data;
      const participants = data.participants!.map(
        ({ identity, kind, joined_at, left_at, disconnect_reason }) => ({
          identity,
          kind,
          joined_at,
          left_at,
          disconnect_reason,
        }),
      );
      return {
        status,
        end_reason,
        end_source,
        started_at,
        ended_at,
        room_sid: room_sid?.replace(/_.*$/, ''),
        participants,
      };
    };
    await fc.assert(
      fc.asyncProperty(
        fc.shuffledSubarray([0, 1, 2, 3, 4, 5], { minLength: 6, maxLength: 6 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }),
        async (order, repeats) => {
          const tag = crypto.randomUUID().slice(0, 8);
          const inOrder = (await issueToken(`wh-${tag}`)).room_name;
          const shuffled = (await issueToken(`wh-${tag}`)).room_name;
          for (const e of script(inOrder, `a${tag}`)) await sendWebhook(e);
          const events = script(shuffled, `b${tag}`);
          for (const i of [...order, ...repeats]) await sendWebhook(events[i]!);
          expect(await outcome(shuffled)).toEqual(await outcome(inOrder));
          // The archive the object wrote at the end says the same, whatever the order.
          const archived = async (room: string) => {
            const { status, end_reason, end_source, started_at, ended_at } =
              (await archiveRow(room))!;
            return { status, end_reason, end_source, started_at, ended_at };
          };
          expect(await archived(shuffled)).toEqual(await archived(inOrder));
        },
      ),
      { numRuns: 20 },
    );
  });
});
