import { describe, expect, it } from 'vitest';
import { callIdFor, type CallReport } from '../../wire-contract/index.ts';
import { ADMIN, call, issueToken, signAsLiveKit, type CallView } from './helpers.ts';

function reportFor(room: string, extra: Partial<CallReport> = {}): CallReport {
  const now = Date.now();
  return {
    version: 1,
    call_id: callIdFor('RM_lat', `AJ_${room}`),
    room,
    room_sid: 'RM_lat',
    job_id: `AJ_${room}`,
    agent_name: 'voice-agent',
    end_reason: 'participant_left',
    ended_by: 'user',
    started_at: new Date(now - 30_000).toISOString(),
    ended_at: new Date(now).toISOString(),
    duration_ms: 30_000,
    transcript: [],
    usage: { llm_prompt_tokens: 1, llm_completion_tokens: 1, tts_characters: 1, stt_seconds: 1 },
    errors: [],
    hooks: [],
    ...extra,
  };
}

async function report(room: string, body: CallReport) {
  const raw = JSON.stringify(body);
  return call(`/calls/${room}/report`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', Authorization: await signAsLiveKit(raw) },
    body: raw,
  });
}

describe('latency in the report (#17)', () => {
  it('stores the turns and their p50/p95 and shows them in GET /calls/:room', async () => {
    const { room_name } = await issueToken('lat1');
    const turn = {
      at: new Date().toISOString(),
      speech_id: 'speech_1',
      eou_delay_ms: 320,
      transcription_delay_ms: 180,
      llm_ttft_ms: 301,
      tts_ttfb_ms: 204,
      e2e_ms: 850,
    };
    const latency = { turns: 1, e2e_ms: { p50: 850, p95: 850 } };
    const res = await report(room_name, reportFor(room_name, { turns: [turn], latency }));
    expect(res.status).toBe(201);
    const view = await call<CallView>(`/calls/${room_name}`, { headers: ADMIN });
    expect(view.data.report).toMatchObject({ turns: [turn], latency });
  });

  it('still accepts a report without them (older agents), and shows none', async () => {
    const { room_name } = await issueToken('lat2');
    expect((await report(room_name, reportFor(room_name))).status).toBe(201);
    const view = await call<CallView>(`/calls/${room_name}`, { headers: ADMIN });
    expect(view.data.report).not.toHaveProperty('turns');
    expect(view.data.report).not.toHaveProperty('latency');
  });
});
