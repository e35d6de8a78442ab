import { describe, expect, it, vi, afterEach } from 'vitest';
import { callIdFor, type CallReport } from '../../wire-contract/index.ts';
import { ADMIN, call, issueToken, ledgerRow, signAsLiveKit, testEnv } from './helpers.ts';

afterEach(() => vi.restoreAllMocks());

function reportFor(room: string, overrides: Partial<CallReport> = {}): CallReport {
  const now = Date.now();
  return {
    version: 1,
    call_id: callIdFor('RM_abc', `AJ_${room}`),
    room,
    room_sid: 'RM_abc',
    job_id: `AJ_${room}`,
    agent_name: 'voice-agent',
    end_reason: 'agent_end_call',
    ended_by: 'agent',
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
    errors: [],
    hooks: [{ name: 'report', status: 'ok', duration_ms: 12 }],
    ...overrides,
  };
}

async function postReport(room: string, body: string, auth?: string) {
  return call(`/calls/${room}/report`, {
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
    const view = await call(`/calls/${room_name}`, { headers: ADMIN });
    expect(view.data).toMatchObject({
      status: 'ended',
      end_reason: 'agent_end_call',
      ended_by: 'agent',
      end_source: 'agent',
    });
    expect(view.data.report.transcript.map((t: any) => t.text)).toEqual(['Hello!', 'Goodbye']);
    expect(view.data.report.usage.llm_prompt_tokens).toBe(120);
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
    expect((await ledgerRow(room_name))!.end_reason).toBe('agent_end_call');
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
    expect(res.status).toBe(401);
    expect(res.data.error).toMatchObject({ code: 'invalid_signature' });
    expect(res.data.error.message).toContain(problem);
    expect((await ledgerRow(room_name))!.status).toBe('open');
  });

  it('rejects a signed but invalid report naming the field, and a report for another room', async () => {
    const { room_name } = await issueToken('r2');
    const bad = JSON.stringify({ ...reportFor(room_name), end_reason: 'bored' });
    const res = await postReport(room_name, bad, await signAsLiveKit(bad));
    expect([res.status, res.data.error.code]).toEqual([400, 'invalid_field']);
    expect(res.data.error.message).toContain('end_reason');
    const other = JSON.stringify(reportFor('some-other-room'));
    expect((await postReport(room_name, other, await signAsLiveKit(other))).status).toBe(400);
  });

  it('lets an authoritative agent reason replace an inferred webhook end, but not an API end', async () => {
    const a = await issueToken('r3');
    await sendWebhook({
      event: 'room_finished',
      room: { name: a.room_name, sid: 'RM_x' },
      id: `EV_${a.room_name}`,
    });
    expect((await ledgerRow(a.room_name))!.end_source).toBe('webhook');
    const body = JSON.stringify(reportFor(a.room_name));
    await postReport(a.room_name, body, await signAsLiveKit(body));
    expect(await ledgerRow(a.room_name)).toMatchObject({
      end_reason: 'agent_end_call',
      end_source: 'agent',
    });

    const b = await issueToken('r4');
    await testEnv.LEDGER.prepare(
      "UPDATE calls SET status='ended', end_reason='api_end_call', end_source='api', end_strength=1, ended_at=1 WHERE room=?",
    )
      .bind(b.room_name)
      .run();
    const seen = JSON.stringify(
      reportFor(b.room_name, { end_reason: 'room_deleted', ended_by: 'unknown' }),
    );
    await postReport(b.room_name, seen, await signAsLiveKit(seen));
    expect((await ledgerRow(b.room_name))!.end_reason).toBe('api_end_call');
  });
});

async function sendWebhook(event: Record<string, unknown>, sign = signAsLiveKit) {
  const body = JSON.stringify({ createdAt: String(Math.floor(Date.now() / 1000)), ...event });
  return call('/livekit/webhook', {
    method: 'POST',
    headers: { 'content-type': 'application/webhook+json', Authorization: await sign(body) },
    body,
  });
}

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
    const view = await call(`/calls/${room_name}`, { headers: ADMIN });
    expect(view.data).toMatchObject({
      status: 'ended',
      room_sid: 'RM_w1',
      end_reason: 'participant_left',
      end_source: 'webhook',
    });
    expect(view.data.participants.find((p: any) => p.identity === 'agent-1').kind).toBe('AGENT');
    expect(view.data.participants.find((p: any) => p.identity === 'w1').disconnect_reason).toBe(
      'CLIENT_INITIATED',
    );
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
    expect((await ledgerRow(room_name))!.end_reason).toBe('error');
  });

  it('ignores a duplicate event id and untracked rooms', async () => {
    const { room_name } = await issueToken('w3');
    const event = { event: 'room_started', room: { name: room_name, sid: 'RM_w3' }, id: 'EV_dup' };
    expect((await sendWebhook(event)).data.outcome).toBe('applied');
    expect((await sendWebhook(event)).data.outcome).toBe('duplicate');
    expect(
      (await sendWebhook({ event: 'room_started', room: { name: 'elsewhere' }, id: 'EV_other' }))
        .data.outcome,
    ).toBe('untracked');
  });

  it('rejects a tampered body, a Bearer-prefixed or wrong-key signature, with the ledger unchanged', async () => {
    const { room_name } = await issueToken('w4');
    const body = JSON.stringify({ event: 'room_finished', room: { name: room_name }, id: 'EV_t' });
    const auth = await signAsLiveKit(body);
    const send = (b: string, a: string) =>
      call('/livekit/webhook', {
        method: 'POST',
        headers: { 'content-type': 'application/webhook+json', Authorization: a },
        body: b,
      });
    expect(
      (await send(body.replace('room_finished', 'room_started'), auth)).data.error.message,
    ).toContain('body_hash_mismatch');
    expect(
      (await send(body, await signAsLiveKit(body, { secret: 'wrong-secret-wrong-secret' }))).status,
    ).toBe(401);
    expect((await send(body, await signAsLiveKit(body, { ttl: -60 }))).status).toBe(401);
    expect((await call('/livekit/webhook', { method: 'POST', body })).status).toBe(401);
    expect((await ledgerRow(room_name))!.status).toBe('open');
  });
});
