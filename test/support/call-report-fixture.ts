import { callIdFor, type CallReport } from '../../wire-contract/index.ts';

/**
 * A valid end-of-call report for `room`, as the agent sends it: a 30 s call the agent ended just
 * now, nothing said, nothing used. `overrides` replace any field; the call id follows the room sid
 * and job id (overridden or not) unless it is overridden too. Imports only the wire contract, so
 * the edge's tests in workerd and the agent's in Node both build their reports here.
 */
export function callReportFor(room: string, overrides: Partial<CallReport> = {}): CallReport {
  const now = Date.now();
  const room_sid = overrides.room_sid ?? `RM_${room}`;
  const job_id = overrides.job_id ?? `AJ_${room}`;
  return {
    version: 1,
    call_id: callIdFor(room_sid, job_id),
    room,
    room_sid,
    job_id,
    agent_name: 'voice-agent',
    end_reason: 'agent_end_call',
    ended_by: 'agent',
    started_at: new Date(now - 30_000).toISOString(),
    ended_at: new Date(now).toISOString(),
    duration_ms: 30_000,
    transcript: [],
    usage: { llm_prompt_tokens: 0, llm_completion_tokens: 0, tts_characters: 0, stt_seconds: 0 },
    errors: [],
    hooks: [],
    ...overrides,
  };
}
