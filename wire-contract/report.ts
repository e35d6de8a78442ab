import * as z from 'zod';
import { END_REASON_VALUES, ENDED_BY_VALUES } from './end-reasons.ts';

export const TranscriptEntry = z.object({
  role: z.enum(['user', 'assistant', 'system', 'tool']),
  text: z.string().max(20_000),
  at: z.iso.datetime(),
});
export type TranscriptEntry = z.infer<typeof TranscriptEntry>;

/** Something that went wrong during the call: where (`source`) and what. */
export const ErrorEntry = z.object({
  at: z.iso.datetime(),
  source: z.string().max(200),
  message: z.string().max(2000),
});
export type ErrorEntry = z.infer<typeof ErrorEntry>;

export const Usage = z.object({
  llm_prompt_tokens: z.number().int().nonnegative(),
  llm_completion_tokens: z.number().int().nonnegative(),
  tts_characters: z.number().int().nonnegative(),
  stt_seconds: z.number().nonnegative(),
});
export type Usage = z.infer<typeof Usage>;

export const HookOutcome = z.object({
  name: z.string().max(200),
  status: z.enum(['ok', 'error', 'timeout', 'skipped']),
  duration_ms: z.number().nonnegative(),
  error: z.string().max(2000).optional(),
});
export type HookOutcome = z.infer<typeof HookOutcome>;

/**
 * One answered user turn, from agents-js's own metrics (milliseconds): the end-of-utterance delay
 * (the caller's last word to the turn's commit), the transcription delay (last word to the final
 * transcript), the LLM's time to first token, the TTS's time to first byte, and end to end (the
 * caller's last word to the agent's first audio out). A field agents-js did not measure is absent.
 */
export const TurnLatency = z.object({
  at: z.iso.datetime(),
  speech_id: z.string().max(128).optional(),
  eou_delay_ms: z.number().nonnegative().optional(),
  transcription_delay_ms: z.number().nonnegative().optional(),
  llm_ttft_ms: z.number().nonnegative().optional(),
  tts_ttfb_ms: z.number().nonnegative().optional(),
  e2e_ms: z.number().nonnegative().optional(),
  interrupted: z.boolean().optional(),
});
export type TurnLatency = z.infer<typeof TurnLatency>;

const Spread = z.object({ p50: z.number().nonnegative(), p95: z.number().nonnegative() });
/** p50/p95 per measure over the call's turns; a measure with no samples is absent. */
export const LatencySummary = z.object({
  turns: z.number().int().nonnegative(),
  eou_delay_ms: Spread.optional(),
  transcription_delay_ms: Spread.optional(),
  llm_ttft_ms: Spread.optional(),
  tts_ttfb_ms: Spread.optional(),
  e2e_ms: Spread.optional(),
});
export type LatencySummary = z.infer<typeof LatencySummary>;

export const MAX_TURNS_IN_REPORT = 1000;

/**
 * The largest report body the edge takes (`POST /calls/:room/report`; over it: 413). The agent
 * builds its reports to fit (a long, text-heavy call gets there).
 */
export const MAX_REPORT_BYTES = 1024 * 1024;

/** The agent's end-of-call report. `call_id` = `${room_sid}:${job_id}`, accepted once by the edge. */
export const CallReport = z.object({
  version: z.literal(1),
  call_id: z.string().min(3).max(256),
  room: z.string().min(1).max(256),
  room_sid: z.string().max(128),
  job_id: z.string().max(128),
  agent_name: z.string().max(128),
  end_reason: z.enum(END_REASON_VALUES),
  ended_by: z.enum(ENDED_BY_VALUES),
  started_at: z.iso.datetime(),
  ended_at: z.iso.datetime(),
  duration_ms: z.number().nonnegative(),
  transcript: z.array(TranscriptEntry).max(5000),
  usage: Usage,
  errors: z.array(ErrorEntry).max(200),
  hooks: z.array(HookOutcome).max(100),
  // Optional (added with issue #17): older agents send reports without them.
  turns: z.array(TurnLatency).max(MAX_TURNS_IN_REPORT).optional(),
  latency: LatencySummary.optional(),
});
export type CallReport = z.infer<typeof CallReport>;

export function callIdFor(roomSid: string, jobId: string): string {
  return `${roomSid}:${jobId}`;
}
