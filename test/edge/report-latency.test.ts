import { describe, expect, it } from 'vitest';
import {
  ADMIN,
  call,
  issueToken,
  postAgentReport,
  type CallView,
} from '../support/edge/helpers.ts';

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
    const res = await postAgentReport(room_name, { turns: [turn], latency });
    expect(res.status).toBe(201);
    const view = await call<CallView>(`/calls/${room_name}`, { headers: ADMIN });
    expect(view.data.report).toMatchObject({ turns: [turn], latency });
  });

  it('still accepts a report without them (older agents), and shows none', async () => {
    const { room_name } = await issueToken('lat2');
    expect((await postAgentReport(room_name)).status).toBe(201);
    const view = await call<CallView>(`/calls/${room_name}`, { headers: ADMIN });
    expect(view.data.report).not.toHaveProperty('turns');
    expect(view.data.report).not.toHaveProperty('latency');
  });
});
