import { changedRows } from './calls.ts';

const PENDING = 'pending:';

/** A dispatch id still being made by some request (a claim), not LiveKit's. */
export function isPendingDispatch(dispatchId: string): boolean {
  return dispatchId.startsWith(PENDING);
}

/**
 * Claims the right to dispatch an agent into this room: one request wins (D1 serializes writes),
 * so two concurrent dispatches cannot both create one. Returns the claim when this request won;
 * undefined when another request holds it or has dispatched. A claim (`pending:<ms>:<request id>`)
 * older than `staleAfterMs` was left by a request that died midway and is taken over.
 */
export async function claimDispatch(
  db: D1Database,
  room: string,
  requestId: string,
  now: number,
  staleAfterMs: number,
): Promise<string | undefined> {
  const claim = `${PENDING}${now}:${requestId}`;
  const start = PENDING.length + 1; // SQLite's substr counts from 1
  const won = await changedRows(
    db
      .prepare(
        `UPDATE calls SET dispatch_id = ?2 WHERE room = ?1 AND (dispatch_id IS NULL OR
           (dispatch_id LIKE '${PENDING}%' AND CAST(substr(dispatch_id, ${start}, instr(substr(dispatch_id, ${start}), ':') - 1) AS INTEGER) < ?3))`,
      )
      .bind(room, claim, now - staleAfterMs),
  );
  return won ? claim : undefined;
}

/** Gives a claim back after a failed dispatch, so a retry can claim again. */
export async function releaseDispatch(db: D1Database, room: string, claim: string): Promise<void> {
  await db
    .prepare('UPDATE calls SET dispatch_id = NULL WHERE room = ?1 AND dispatch_id = ?2')
    .bind(room, claim)
    .run();
}

export async function recordDispatch(
  db: D1Database,
  room: string,
  dispatchId: string,
): Promise<void> {
  await db
    .prepare('UPDATE calls SET dispatch_id = ?2 WHERE room = ?1')
    .bind(room, dispatchId)
    .run();
}
