import type { CallRow } from './calls.ts';

/** The LiveKit room an event or an agent speaks for. */
export type RoomInstance = { sid: string | undefined; createdAtMs: number | undefined };

/**
 * Whether `instance` is a room LiveKit recreated for a call the ledger has already ended: a token
 * is valid for its whole TTL, and LiveKit recreates a deleted room (re-running the token's agent
 * dispatch) for anyone who joins with one. The call's own room is told apart by its sid, or, when
 * the ledger never learned the sid (an end before any webhook), by being created before the end.
 */
export function isRevival(
  call: Pick<CallRow, 'status' | 'room_sid' | 'ended_at'>,
  instance: RoomInstance,
): boolean {
  if (call.status !== 'ended') return false;
  if (call.room_sid && instance.sid) return instance.sid !== call.room_sid;
  if (instance.createdAtMs !== undefined && call.ended_at != null)
    return instance.createdAtMs >= call.ended_at;
  // Nothing tells them apart: treat it as a revival, since the call is over either way.
  return true;
}

/**
 * `isRevival` in SQL, over the `calls` row in scope, for statements that decide and write in one
 * round trip. `sid` and `createdAtMs` are the SQL parameters (e.g. `?2`) holding the instance's
 * sid (NULL when unknown) and creation time (NULL when unknown). test/edge/ledger-scale.test.ts
 * holds the two to the same answers.
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
 * Counts one revival per revived room (by sid), however many of its webhooks or agents report it.
 * Returns whether this was the first report of that room, so it is logged once.
 */
export async function recordRevival(
  db: D1Database,
  room: string,
  sid: string | undefined,
  at: number,
): Promise<boolean> {
  const { meta } = await db
    .prepare(
      `UPDATE calls SET revival_attempts = revival_attempts + 1, last_revival_at = ?3,
         last_revival_sid = ?2 WHERE room = ?1 AND last_revival_sid IS NOT ?2`,
    )
    .bind(room, sid ?? null, at)
    .run();
  return meta.changes > 0;
}
