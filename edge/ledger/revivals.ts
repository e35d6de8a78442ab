/** The LiveKit room an event or an agent speaks for. */
export type RoomInstance = { sid: string | undefined; createdAtMs: number | undefined };

/**
 * Whether a room instance is one LiveKit recreated for a call the ledger has already ended: a
 * token is valid for its whole TTL, and LiveKit recreates a deleted room (re-running the token's
 * agent dispatch) for anyone who joins with one. The call's own room is told apart by its sid, or,
 * when the ledger never learned the sid (an end before any webhook), by being created before the
 * end; when nothing tells them apart it counts as a revival, the call being over either way. SQL
 * over the `calls` row in scope, so a statement decides and writes in one round trip: `sid` and
 * `createdAtMs` are the parameters (e.g. `?2`) holding the instance's sid and creation time (NULL
 * when unknown).
 */
export function revivalSql(sid: string, createdAtMs: string): string {
  return `(status = 'ended' AND CASE
    WHEN NULLIF(room_sid, '') IS NOT NULL AND ${sid} IS NOT NULL THEN ${sid} <> room_sid
    WHEN ${createdAtMs} IS NOT NULL AND ended_at IS NOT NULL THEN ${createdAtMs} >= ended_at
    ELSE 1 END)`;
}

/**
 * The columns a revival sets, for an UPDATE of `calls` whose WHERE matched the call: counts one
 * attempt per revived room (by sid), and remembers when a revived room was last seen. `revival`
 * is the condition (revivalSql), `now` the parameter holding the time.
 */
export function revivalColumnsSql(revival: string, sid: string, now: string): string {
  return `revival_attempts = revival_attempts + IIF(${revival} AND last_revival_sid IS NOT ${sid}, 1, 0),
    last_revival_at = IIF(${revival}, ${now}, last_revival_at),
    last_revival_sid = IIF(${revival}, ${sid}, last_revival_sid)`;
}

/** For RETURNING after revivalColumnsSql: whether this statement saw a revival. */
export function sawRevivalSql(sid: string, now: string): string {
  return `(last_revival_at IS ${now} AND last_revival_sid IS ${sid})`;
}

/**
 * Counts a revival when `instance` is one (one per revived room, by sid). Returns whether it is a
 * revival. The agent's admission uses this; webhooks fold the same SQL into their own statement.
 */
export async function countIfRevival(
  db: D1Database,
  room: string,
  instance: RoomInstance,
  now: number,
): Promise<boolean> {
  const revival = revivalSql('?2', '?3');
  const row = await db
    .prepare(
      `UPDATE calls SET ${revivalColumnsSql(revival, '?2', '?4')} WHERE room = ?1
         RETURNING ${revival} AS revival`,
    )
    .bind(room, instance.sid ?? null, instance.createdAtMs ?? null, now)
    .first<{ revival: number }>();
  return Boolean(row?.revival);
}
