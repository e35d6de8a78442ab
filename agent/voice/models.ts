import { inference, type voice } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import * as z from 'zod';
import type { DispatchMetadata } from '../../wire-contract/index.ts';
import type { AgentConfig } from '../config.ts';

type SessionModels = Pick<
  voice.AgentSessionOptions,
  'llm' | 'stt' | 'tts' | 'vad' | 'turnHandling'
>;

/**
 * The OpenAI models for one call: config defaults, with the model and voice the dispatch metadata
 * may override. `baseURL` lets tests and proxies stand in for api.openai.com.
 */
export function sessionModels(
  config: AgentConfig,
  call: Partial<DispatchMetadata>,
  turns: TurnSettings = turnSettings(),
): SessionModels {
  const auth = { apiKey: config.OPENAI_API_KEY, baseURL: config.OPENAI_BASE_URL };
  if (config.AGENT_MODEL_MODE === 'realtime') {
    return {
      llm: new openai.realtime.RealtimeModel({
        ...auth,
        model: call.model ?? config.REALTIME_MODEL,
        voice: call.voice ?? config.REALTIME_VOICE,
      }),
    };
  }
  return {
    llm: new openai.LLM({ ...auth, model: call.model ?? config.LLM_MODEL }),
    tts: new openai.TTS({
      ...auth,
      model: config.TTS_MODEL,
      voice: (call.voice ?? config.TTS_VOICE) as never,
    }),
    // Text-only calls need no STT (and no VAD model); audio calls use the non-streaming endpoint.
    ...(config.AGENT_AUDIO_INPUT
      ? {
          stt: new openai.STT({ ...auth, model: config.STT_MODEL, useRealtime: false }),
          ...(turns.VAD_MIN_SILENCE_MS !== undefined && {
            vad: new inference.VAD({ minSilenceDuration: turns.VAD_MIN_SILENCE_MS }),
          }),
          turnHandling: turnHandling(turns),
        }
      : // Turns come only from typed text (the text callback answers each): no turn detector,
        // which would otherwise warn that it has no VAD.
        { vad: null, turnHandling: { turnDetection: 'manual' as const } }),
  };
}

const optionalMs = z.coerce.number().int().min(0).max(30_000).optional();

/**
 * How the agent decides the caller's turn is over (issue #17; measured in docs/benchmarks.md).
 * - TURN_DETECTION: `model` = agents-js's end-of-turn model (its default), `vad` = silence only;
 * - ENDPOINTING_MIN_DELAY_MS / ENDPOINTING_MAX_DELAY_MS: silence after the last word before the
 *   turn ends (likely end / unlikely end per the model; `vad` uses the minimum);
 * - VAD_MIN_SILENCE_MS: silence before the VAD reports the end of speech;
 * - PREEMPTIVE_TTS: also synthesise the preemptive reply before the turn is confirmed.
 * The defaults are what bench:capacity measured best that still holds a ~600 ms mid-sentence pause
 * (test/e2e/voice.test.ts); agents-js 1.9's own are model, 500/3000 ms, 250 ms, false.
 */
const TurnSettingsShape = z.object({
  TURN_DETECTION: z.enum(['model', 'vad']).default('model'),
  ENDPOINTING_MIN_DELAY_MS: optionalMs.default(300),
  ENDPOINTING_MAX_DELAY_MS: optionalMs.default(1000),
  VAD_MIN_SILENCE_MS: optionalMs,
  PREEMPTIVE_TTS: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
});
export const TurnSettings = TurnSettingsShape.refine(
  (t) => t.TURN_DETECTION === 'vad' || (t.VAD_MIN_SILENCE_MS ?? 250) >= 250,
  {
    // agents-js refuses the session ("too low for the TurnDetector") and the call fails.
    message: 'must be at least 250 with TURN_DETECTION=model',
    path: ['VAD_MIN_SILENCE_MS'],
  },
);
export type TurnSettings = z.infer<typeof TurnSettings>;

/** Reads the turn settings from the environment; a bad value throws naming its variable. */
export function turnSettings(env: Record<string, string | undefined> = process.env): TurnSettings {
  const pick = Object.fromEntries(
    Object.keys(TurnSettingsShape.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]),
  );
  const parsed = TurnSettings.safeParse(pick);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new Error(`invalid ${String(issue.path[0])}: ${issue.message}`);
}

function turnHandling(t: TurnSettings): voice.AgentSessionOptions['turnHandling'] {
  return {
    ...(t.TURN_DETECTION === 'vad' && { turnDetection: 'vad' as const }),
    endpointing: {
      ...(t.ENDPOINTING_MIN_DELAY_MS !== undefined && { minDelay: t.ENDPOINTING_MIN_DELAY_MS }),
      ...(t.ENDPOINTING_MAX_DELAY_MS !== undefined && { maxDelay: t.ENDPOINTING_MAX_DELAY_MS }),
    },
    preemptiveGeneration: { enabled: true, preemptiveTts: t.PREEMPTIVE_TTS },
  };
}
