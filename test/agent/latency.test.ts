import { llm, type metrics } from '@livekit/agents';
import { describe, expect, it } from 'vitest';
import { buildReport } from '../../agent/report/call-report.ts';
import { percentile, summarize, TurnLatencies } from '../../agent/report/latency.ts';
import { CallReport } from '../../wire-contract/index.ts';

const eou = (speechId: string, eouMs: number, sttMs: number): metrics.EOUMetrics => ({
  type: 'eou_metrics',
  timestamp: 1_700_000_000_000,
  endOfUtteranceDelayMs: eouMs,
  transcriptionDelayMs: sttMs,
  onUserTurnCompletedDelayMs: 1,
  lastSpeakingTimeMs: 0,
  speechId,
});
const llmM = (speechId: string | undefined, ttftMs: number) =>
  ({ type: 'llm_metrics', timestamp: 1, ttftMs, speechId }) as unknown as metrics.LLMMetrics;
const ttsM = (speechId: string | undefined, ttfbMs: number) =>
  ({ type: 'tts_metrics', timestamp: 1, ttfbMs, speechId }) as unknown as metrics.TTSMetrics;
const answer = (e2eSeconds?: number) =>
  llm.ChatMessage.create({
    role: 'assistant',
    content: 'You said: hi',
    ...(e2eSeconds !== undefined && { metrics: { e2eLatency: e2eSeconds } }),
  });

describe('TurnLatencies', () => {
  it('joins the EOU, LLM, TTS metrics and the answer’s e2e latency by speech id, one line per turn', () => {
    const logged: unknown[] = [];
    const t = new TurnLatencies({ onTurn: (turn) => logged.push(turn) });
    // The greeting: LLM and TTS metrics, no EOU: not a caller's turn.
    t.metrics(llmM('greet', 310));
    t.metrics(ttsM('greet', 205));
    t.speechDone('greet', [answer()], false);
    // Turn 1: preemptive LLM before the EOU metrics, as agents-js emits them.
    t.metrics(llmM('s1', 302.4));
    t.metrics(eou('s1', 740, 180));
    t.metrics(ttsM('s1', 201));
    t.metrics(llmM('s1', 900)); // a tool call's follow-up: not what the caller waited for
    t.metrics(ttsM(undefined, 5)); // untagged: ignored
    t.speechDone('s1', [answer(1.05)], false);
    // Turn 2: cut off by the caller; its EOU metrics arrive after it was done.
    t.metrics(llmM('s2', 320));
    t.metrics(ttsM('s2', 230));
    t.speechDone('s2', [answer(1.2)], true);
    t.metrics(eou('s2', 800, 200));

    expect(t.turns()).toEqual([
      {
        at: new Date(1).toISOString(),
        speech_id: 's1',
        eou_delay_ms: 740,
        transcription_delay_ms: 180,
        llm_ttft_ms: 302,
        tts_ttfb_ms: 201,
        e2e_ms: 1050,
      },
      {
        at: new Date(1).toISOString(),
        speech_id: 's2',
        eou_delay_ms: 800,
        transcription_delay_ms: 200,
        llm_ttft_ms: 320,
        tts_ttfb_ms: 230,
        e2e_ms: 1200,
        interrupted: true,
      },
    ]);
    expect(logged).toEqual(t.turns());
  });

  it('summarises p50/p95 by nearest rank and leaves out measures with no samples', () => {
    expect(percentile([5, 1, 4, 2, 3], 50)).toBe(3);
    expect(percentile([5, 1, 4, 2, 3], 95)).toBe(5);
    expect(percentile([7], 95)).toBe(7);
    const values = Array.from({ length: 20 }, (_, i) => (i + 1) * 100);
    const turns = values.map((v) => ({
      at: new Date(0).toISOString(),
      e2e_ms: v,
      eou_delay_ms: 1,
    }));
    expect(summarize(turns)).toEqual({
      turns: 20,
      e2e_ms: { p50: 1000, p95: 1900 },
      eou_delay_ms: { p50: 1, p95: 1 },
    });
    expect(summarize([])).toEqual({ turns: 0 });
  });

  it('puts the turns and the summary into a report the contract accepts; reports without them still parse', () => {
    const t = new TurnLatencies();
    t.metrics(eou('s1', 700, 150));
    t.metrics(llmM('s1', 300));
    t.speechDone('s1', [answer(1.1)], false);
    const report = buildReport({
      summary: {
        reason: 'participant_left',
        room: 'call-1',
        jobId: 'AJ_1',
        startedAt: new Date(1_000_000),
        endedAt: new Date(1_060_000),
      } as never,
      roomSid: 'RM_1',
      agentName: 'a',
      history: [],
      usage: [],
      errors: [],
      hooks: [],
      latency: t,
    });
    expect(report.turns).toHaveLength(1);
    expect(report.latency).toMatchObject({ turns: 1, e2e_ms: { p50: 1100, p95: 1100 } });
    const parsed = CallReport.parse(JSON.parse(JSON.stringify(report)));
    expect(parsed.turns?.[0]?.e2e_ms).toBe(1100);
    const { turns: _t, latency: _l, ...older } = parsed;
    expect(CallReport.safeParse(older).success).toBe(true);
  });
});

describe('turn settings', () => {
  it('defaults to the measured levers and names a bad variable', async () => {
    const { turnSettings } = await import('../../agent/voice/models.ts');
    expect(turnSettings({})).toEqual({
      TURN_DETECTION: 'model',
      ENDPOINTING_MIN_DELAY_MS: 300,
      ENDPOINTING_MAX_DELAY_MS: 1000,
      PREEMPTIVE_TTS: true,
    });
    expect(turnSettings({ TURN_DETECTION: 'vad', VAD_MIN_SILENCE_MS: '150' })).toMatchObject({
      TURN_DETECTION: 'vad',
      VAD_MIN_SILENCE_MS: 150,
    });
    // agents-js refuses a VAD this quick beside its end-of-turn model: caught at the boundary.
    expect(() => turnSettings({ VAD_MIN_SILENCE_MS: '150' })).toThrow(/VAD_MIN_SILENCE_MS/);
    expect(() => turnSettings({ ENDPOINTING_MIN_DELAY_MS: 'soon' })).toThrow(
      /ENDPOINTING_MIN_DELAY_MS/,
    );
  });
});
