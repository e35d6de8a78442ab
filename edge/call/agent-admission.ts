import type { AdmissionRequest } from '../../wire-contract/index.ts';
import type { Config } from '../config.ts';
import { ADMITTED_AGENT_GRACE_MS, admitAgentJob } from '../ledger/admissions.ts';
import type { CallRow } from '../ledger/calls.ts';
import { countIfRevival, roomAskedAbout } from '../ledger/revivals.ts';
import { agentPresent } from '../livekit/rooms.ts';

/**
 * What an agent job's admission came to. `admitted`: this job is the call's agent now (its grace
 * to join counting from now); `again`: it already was (a retried request: its grace still counts
 * from the first); `superseded`: a late job, replaced on its way; `agent_present`: the call has
 * its agent; `call_ended`: the call is over (the room, a revival, is the caller's to close).
 */
export type AgentAdmission = {
  outcome: 'admitted' | 'again' | 'superseded' | 'agent_present' | 'call_ended';
  /** For `admitted` and `again`: how long (ms from now) the job has to join its room. */
  joinWithinMs?: number;
};

/**
 * Decides an agent job's admission into an open or ended call, on the call's ledger: one agent
 * per call. A re-dispatch may race a slow first job, and the second to ask stays out, unless the
 * first was admitted long ago and is not in the room (it died on the way). An ended call's room
 * is a revival, counted.
 */
export async function admitAgent(
  db: D1Database,
  config: Config,
  call: CallRow,
  ask: AdmissionRequest,
  now: number,
): Promise<AgentAdmission> {
  if (call.status !== 'open') {
    await countIfRevival(db, call.room, roomAskedAbout(ask.room_sid, ask.room_created_at), now);
    return { outcome: 'call_ended' };
  }
  const another = call.agent_job_id != null && call.agent_job_id !== ask.job_id;
  const present = another && (await agentPresent(config, call.room).catch(() => undefined));
  const admission = present
    ? 'refused'
    : await admitAgentJob(db, call.room, ask.job_id, now, { joining: ask.joining });
  if (admission === 'admitted')
    return { outcome: 'admitted', joinWithinMs: ADMITTED_AGENT_GRACE_MS };
  if (admission === 'again') {
    const left = (call.agent_admitted_at ?? now) + ADMITTED_AGENT_GRACE_MS - now;
    return { outcome: 'again', joinWithinMs: Math.max(0, left) };
  }
  return { outcome: ask.joining ? 'superseded' : 'agent_present' };
}
