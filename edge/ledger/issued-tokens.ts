import { newCallParams, type NewCall } from './calls.ts';

/**
 * Who opened a call, for the open-call cap, and the cap itself. `key` null: nobody to cap (a
 * backend); `max` 0: the cap is off.
 */
export type OpenCallCap = { callerKey: string | null; maxOpenCalls: number };

/** A call as a token opens it: who the token is for, and when it expires (epoch ms). */
export type IssuedCall = NewCall & { identity: string; joinBy: number };

/**
 * A caller's open calls, as the cap counts them: a call that started counts until it ends; one
 * that never started only while its last token can still be joined (an unused token, e.g. a page
 * that fetched one on load, stops holding a place when it expires).
 */
const COUNTED_OPEN_CALLS = `FROM calls WHERE caller_key = ?7 AND status = 'open'
  AND (started_at IS NOT NULL OR join_by > ?5)`;

/**
 * Opens the call unless the caller already holds the cap (one statement, so a burst cannot
 * overshoot), or, for a room already open, pushes out when its tokens can still be joined and the
 * backstop's deadline with it (every token for a room that has not started does). Returns the
 * call's status; no row when the cap refused a new call. A token for a room that exists never
 * counts against the cap again.
 */
function upsertCallWithinCap(db: D1Database, call: IssuedCall & OpenCallCap) {
  const pushOut = `status = 'open' AND started_at IS NULL`;
  return db
    .prepare(
      `INSERT INTO calls (room, agent_name, end_mode, max_duration_seconds, created_at, deadline_at, caller_key, join_by)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9
       WHERE ?7 IS NULL OR ?8 = 0 OR EXISTS (SELECT 1 FROM calls WHERE room = ?1)
         OR (SELECT COUNT(*) ${COUNTED_OPEN_CALLS}) < ?8
       ON CONFLICT (room) DO UPDATE SET
         join_by = IIF(${pushOut}, MAX(COALESCE(join_by, 0), excluded.join_by), join_by),
         deadline_at = IIF(${pushOut}, MAX(deadline_at, excluded.deadline_at), deadline_at)
       RETURNING status`,
    )
    .bind(...newCallParams(call), call.callerKey, call.maxOpenCalls, call.joinBy);
}

/**
 * What recording a token came to: `recorded` (the call is open, the token in it), or why the ledger
 * refused it: `room_spent` (the room already hosted a call that ended: room names are single-use)
 * or `at_cap` (the caller already holds its most open calls), with when a place frees up for sure
 * (epoch ms; null when none can be named).
 */
export type IssuedToken =
  | { outcome: 'recorded' }
  | { outcome: 'room_spent' }
  | { outcome: 'at_cap'; placeFreesAt: number | null };

/**
 * Records a token issued for `identity` in `room`; the first token for a room opens the call,
 * unless its caller already holds `maxOpenCalls` open calls (`at_cap`). A token for a room that is
 * already open never counts again. One round trip of two statements: the participant row is only
 * added while the call is open, and the returned status says whether the room name was already
 * spent or the cap refused it.
 */
export async function recordIssuedToken(
  db: D1Database,
  call: IssuedCall & OpenCallCap,
): Promise<IssuedToken> {
  const [status] = await db.batch([
    upsertCallWithinCap(db, call),
    db
      .prepare(
        `INSERT INTO call_participants (room, identity, issued_at)
         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM calls WHERE room = ?1 AND status = 'open')
         ON CONFLICT (room, identity) DO UPDATE SET issued_at = COALESCE(issued_at, excluded.issued_at)`,
      )
      .bind(call.room, call.identity, call.now),
  ]);
  const row = status?.results[0] as { status?: string } | undefined;
  if (row?.status === 'ended') return { outcome: 'room_spent' };
  if (row) return { outcome: 'recorded' };
  // Only when the cap refused (a second round trip): when a place frees up for sure.
  const soonest = await db
    .prepare(
      `SELECT MIN(CASE WHEN started_at IS NULL THEN join_by ELSE deadline_at END) AS at
       FROM calls WHERE caller_key = ?1 AND status = 'open' AND (started_at IS NOT NULL OR join_by > ?2)`,
    )
    .bind(call.callerKey, call.now)
    .first<{ at: number | null }>();
  return { outcome: 'at_cap', placeFreesAt: soonest?.at ?? null };
}
