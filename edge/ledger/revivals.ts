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
