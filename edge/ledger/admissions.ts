/** How long an admitted agent job may take to join before another job may replace it. */
export const ADMITTED_AGENT_GRACE_MS = 30_000;

/**
 * Records `jobId` as the call's agent unless another job was admitted within the grace (it is on
 * its way, or in the room: the caller checks LiveKit for that). Returns whether this job is the
 * call's agent now. One statement: two jobs racing for one call cannot both win.
 */
export async function admitAgentJob(
  db: D1Database,
  room: string,
  jobId: string,
  now: number,
): Promise<boolean> {
  const { meta } = await db
    .prepare(
      `UPDATE calls SET agent_job_id = ?2, agent_admitted_at = ?3 WHERE room = ?1 AND
         (agent_job_id IS NULL OR agent_job_id = ?2 OR agent_admitted_at < ?3 - ?4)`,
    )
    .bind(room, jobId, now, ADMITTED_AGENT_GRACE_MS)
    .run();
  return meta.changes > 0;
}

/** Whether some agent job was admitted for this call (it is coming, or came). */
export async function agentAdmitted(db: D1Database, room: string): Promise<boolean> {
  const row = await db
    .prepare('SELECT agent_job_id FROM calls WHERE room = ?')
    .bind(room)
    .first<{ agent_job_id: string | null }>();
  return row?.agent_job_id != null;
}
