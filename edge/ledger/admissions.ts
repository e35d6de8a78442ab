/**
 * How long an admitted agent job has to join its room. Past it, with no agent in the room, the job
 * is taken for lost (it died on the way: a crash, a kill for memory): the edge dispatches again
 * (edge/call/agent-arrival.ts) and admits the next job in its place. A job normally joins within a
 * second or two of its admission; it is short enough for a replacement to be dispatched and
 * admitted within one watch (a Worker's waitUntil lasts 30 s). A job that is only slow (its hooks
 * module, a loaded host) and still on its way past it asks again before it joins (`joining`): it
 * keeps its place if no other took it, and otherwise leaves, so a call never gets two agents.
 */
export const ADMITTED_AGENT_GRACE_MS = 15_000;

export type Admission = 'admitted' | 'again' | 'refused';

/**
 * Records `jobId` as the call's agent unless another job was admitted within the grace (it is on
 * its way, or in the room: the caller checks LiveKit for that). `admitted`: this job is the call's
 * agent now, its grace counting from `now`; `again`: it already was (a retried request; its grace
 * still counts from the first); `refused`: another is. With `joining` (the job, admitted earlier,
 * is about to join late), the job already admitted gets its place renewed from `now` (`admitted`):
 * a replacement dispatched meanwhile is then refused. One statement decides: two jobs racing for
 * one call cannot both win.
 */
export async function admitAgentJob(
  db: D1Database,
  room: string,
  jobId: string,
  now: number,
  { joining = false } = {},
): Promise<Admission> {
  const { meta } = await db
    .prepare(
      `UPDATE calls SET agent_job_id = ?2, agent_admitted_at = ?3 WHERE room = ?1 AND
         (agent_job_id IS NULL OR (?5 AND agent_job_id = ?2) OR
          (agent_job_id != ?2 AND agent_admitted_at < ?3 - ?4))`,
    )
    .bind(room, jobId, now, ADMITTED_AGENT_GRACE_MS, joining ? 1 : 0)
    .run();
  if (meta.changes > 0) return 'admitted';
  return (await admittedJob(db, room))?.jobId === jobId ? 'again' : 'refused';
}

/** The agent job the edge last admitted for this call, and when (it is coming, came, or was lost). */
export async function admittedJob(
  db: D1Database,
  room: string,
): Promise<{ jobId: string; at: number } | undefined> {
  const row = await db
    .prepare('SELECT agent_job_id, agent_admitted_at FROM calls WHERE room = ?')
    .bind(room)
    .first<{ agent_job_id: string | null; agent_admitted_at: number | null }>();
  return row?.agent_job_id != null
    ? { jobId: row.agent_job_id, at: row.agent_admitted_at ?? 0 }
    : undefined;
}

/** When the call's first caller joined (epoch ms): how long it has waited for its agent. */
export async function callerWaitingSince(
  db: D1Database,
  room: string,
): Promise<number | undefined> {
  const row = await db
    .prepare(
      `SELECT MIN(joined_at) AS since FROM call_participants
         WHERE room = ? AND kind != 'AGENT' AND joined_at IS NOT NULL`,
    )
    .bind(room)
    .first<{ since: number | null }>();
  return row?.since ?? undefined;
}
