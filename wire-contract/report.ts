import * as z from 'zod';
import { END_REASON_VALUES, ENDED_BY_VALUES } from './end-reasons.ts';

export const TranscriptEntry = z.object({
  role: z.enum(['user', 'assistant', 'system', 'tool']),
  text: z.string().max(20_000),
  at: z.iso.datetime(),
});

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
  errors: z
    .array(
      z.object({
        at: z.iso.datetime(),
        source: z.string().max(200),
        message: z.string().max(2000),
      }),
    )
    .max(200),
  hooks: z.array(HookOutcome).max(100),
});
export type CallReport = z.infer<typeof CallReport>;

export function callIdFor(roomSid: string, jobId: string): string {
  return `${roomSid}:${jobId}`;
}
