/**
 * The LiveKit room an event or an agent speaks for: its sid, and when LiveKit created it (epoch
 * ms), known to `createdAtPrecisionMs` (1 from LiveKit's `creationTimeMs`, 1000 from its
 * seconds-only `creationTime`; 1 when not given).
 */
export type RoomInstance = {
  sid: string | undefined;
  createdAtMs: number | undefined;
  createdAtPrecisionMs?: number;
};

/**
 * The latest moment the room may have been created: what the revival check compares with the
 * call's end. A seconds-only time stands for its whole second, so a room created in the second the
 * call ended counts as created after the end (a revival): a room revived within that second would
 * otherwise pass for the call's own (its events applied as the call's, its room left open). The
 * other error is cheaper: the call's own room, created in its end's second and heard of only
 * after the end with no sid recorded, is closed (the call is over anyway) and counted as a revival.
 */
export function latestCreationMs(instance: RoomInstance): number | undefined {
  if (instance.createdAtMs === undefined) return undefined;
  return instance.createdAtMs + (instance.createdAtPrecisionMs ?? 1) - 1;
}

/**
 * The room an agent's admission request names. Its `room_created_at` is in ms, but an agent that
 * had only LiveKit's seconds sends that second in ms: a time on a whole second is taken to the
 * second, so it cannot pass for a time before an end later in that second.
 */
export function roomAskedAbout(sid: string, createdAtMs: number | undefined): RoomInstance {
  const wholeSecond = createdAtMs !== undefined && createdAtMs % 1000 === 0;
  return { sid: sid || undefined, createdAtMs, createdAtPrecisionMs: wholeSecond ? 1000 : 1 };
}

/**
 * Whether a room instance is one LiveKit recreated for a call the ledger has already ended: a
 * token is valid for its whole TTL, and LiveKit recreates a deleted room (re-running the token's
 * agent dispatch) for anyone who joins with one. The call's own room is told apart by its sid, or,
 * when the ledger never learned the sid (an end before any webhook), by being created before the
 * end; when nothing tells them apart it counts as a revival, the call being over either way. SQL
 * over the `calls` row in scope, so a statement decides and writes in one round trip: `sid` and
 * `createdAtMs` are the parameters (e.g. `?2`) holding the instance's sid and the latest it may
 * have been created (latestCreationMs; NULL when unknown).
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
    .bind(room, instance.sid ?? null, latestCreationMs(instance) ?? null, now)
    .first<{ revival: number }>();
  return Boolean(row?.revival);
}
