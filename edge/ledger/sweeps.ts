/** The call's room exists after all (its start was not seen, e.g. no webhooks): it started. */
export async function markStarted(db: D1Database, room: string, at: number): Promise<void> {
  await markStartedMany(db, [room], at);
}

/** Rooms LiveKit has after all: their calls started (and the cron's claim on them ends). */
export async function markStartedMany(db: D1Database, rooms: string[], at: number): Promise<void> {
  if (!rooms.length) return;
  await db
    .prepare(
      `UPDATE calls SET started_at = COALESCE(started_at, ?2), sweep_until = NULL
       WHERE room IN (SELECT value FROM json_each(?1))`,
    )
    .bind(JSON.stringify(rooms), at)
    .run();
}

/** Which cron sweep: calls that were live past their deadline, or tokens never used. */
export type Sweep = 'live_overdue' | 'unused';
const SWEEPS: Record<Sweep, { index: string; where: string; by: string }> = {
  // A call that was live: it started, or was opened for an existing room (a dispatch).
  live_overdue: {
    index: 'calls_live_by_deadline',
    where: "status = 'open' AND (started_at IS NOT NULL OR join_by IS NULL) AND deadline_at < ?1",
    by: 'deadline_at',
  },
  // Never started, and its last token has expired: never max_duration, whatever its deadline.
  unused: {
    index: 'calls_unstarted_by_join_by',
    where: "status = 'open' AND started_at IS NULL AND join_by < ?1",
    by: 'join_by',
  },
};

/**
 * Claims up to `limit` calls a sweep owes an end (`before`: the deadline or join-by cut-off),
 * oldest first, in one statement through the sweep's index. A claim holds until `claimUntil`: a
 * cron run that overlaps (a slow LiveKit) skips claimed calls, so no call is processed twice; a
 * run that dies leaves its claims to expire.
 */
export async function claimForSweep(
  db: D1Database,
  sweep: Sweep,
  before: number,
  now: number,
  claimUntil: number,
  limit: number,
): Promise<string[]> {
  const { index, where, by } = SWEEPS[sweep];
  const { results } = await db
    .prepare(
      `UPDATE calls SET sweep_until = ?3 WHERE room IN (
         SELECT room FROM calls INDEXED BY ${index}
         WHERE ${where} AND (sweep_until IS NULL OR sweep_until <= ?2)
         ORDER BY ${by} LIMIT ?4)
       RETURNING room`,
    )
    .bind(before, now, claimUntil, limit)
    .all<{ room: string }>();
  return results.map((r) => r.room);
}

/** Gives claims back (calls the run could not finish), so the next run takes them at once. */
export async function releaseClaims(db: D1Database, rooms: string[]): Promise<void> {
  if (!rooms.length) return;
  await db
    .prepare('UPDATE calls SET sweep_until = NULL WHERE room IN (SELECT value FROM json_each(?1))')
    .bind(JSON.stringify(rooms))
    .run();
}

/** How long each kind of data is kept (RETENTION_*_DAYS), in ms. */
export type Retention = { callsMs: number; reportsMs: number; webhookEventsMs: number };

/**
 * Deletes, oldest first, at most `batch` of each kind of data past its retention: reports; calls
 * that ended (with their participants and any report left); and webhook event ids (a table the
 * ledger no longer writes). Each kind is one round trip through an index; returns the rows deleted
 * per kind, so the caller can run it again while a backlog remains.
 */
export async function pruneLedger(
  db: D1Database,
  now: number,
  keep: Retention,
  batch: number,
): Promise<{ calls: number; reports: number; webhookEvents: number }> {
  const oldCalls = `SELECT room FROM calls INDEXED BY calls_ended_by_ended_at
    WHERE status = 'ended' AND ended_at < ?1 ORDER BY ended_at LIMIT ?2`;
  const [reports, , , calls, events] = await db.batch([
    db
      .prepare(
        `DELETE FROM call_reports WHERE call_id IN (SELECT call_id FROM call_reports
           WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)`,
      )
      .bind(now - keep.reportsMs, batch),
    // The same rooms in each statement: the batch is one transaction and the calls go last.
    db
      .prepare(`DELETE FROM call_reports WHERE room IN (${oldCalls})`)
      .bind(now - keep.callsMs, batch),
    db
      .prepare(`DELETE FROM call_participants WHERE room IN (${oldCalls})`)
      .bind(now - keep.callsMs, batch),
    db.prepare(`DELETE FROM calls WHERE room IN (${oldCalls})`).bind(now - keep.callsMs, batch),
    db
      .prepare(
        `DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events
           WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)`,
      )
      .bind(now - keep.webhookEventsMs, batch),
  ]);
  return {
    reports: reports?.meta.changes ?? 0,
    calls: calls?.meta.changes ?? 0,
    webhookEvents: events?.meta.changes ?? 0,
  };
}
