import type { voice } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import type { DispatchMetadata } from '../wire-contract/index.ts';
import type { AgentConfig } from './config.ts';

type SessionModels = Pick<voice.AgentSessionOptions, 'llm' | 'stt' | 'tts' | 'vad'>;

/**
 * The OpenAI models for one call: config defaults, with the model and voice the dispatch metadata
 * may override. `baseURL` lets tests and proxies stand in for api.openai.com.
 */
export function sessionModels(config: AgentConfig, call: Partial<DispatchMetadata>): SessionModels {
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
      ? { stt: new openai.STT({ ...auth, model: config.STT_MODEL, useRealtime: false }) }
      : { vad: null }),
  };
}
