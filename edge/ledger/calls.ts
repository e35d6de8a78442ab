import type { CallReport, EndedBy, EndMode, EndReason } from '../../wire-contract/index.ts';
import { ApiError } from '../errors.ts';

export type EndSource = 'api' | 'cron' | 'agent' | 'webhook';

export type CallRow = {
  room: string;
  room_sid: string | null;
  agent_name: string;
  end_mode: EndMode;
  max_duration_seconds: number;
  created_at: number;
  deadline_at: number;
  started_at: number | null;
  status: 'open' | 'ended';
  ended_at: number | null;
  end_reason: EndReason | null;
  ended_by: EndedBy | null;
  end_source: EndSource | null;
  end_strength: number | null;
  end_note: string | null;
  agent_removed_at: number | null;
  dispatch_id: string | null;
  join_by: number | null;
  /** Who opened the call, for the open-call cap (migration 0004); null for backends. */
  caller_key: string | null;
  /** Rooms LiveKit recreated for this call after it ended (edge/ledger/revivals.ts). */
  revival_attempts: number;
  last_revival_at: number | null;
  last_revival_sid: string | null;
};

export type ParticipantRow = {
  identity: string;
  kind: string;
  issued_at: number | null;
  joined_at: number | null;
  left_at: number | null;
  disconnect_reason: string | null;
};

export type NewCall = {
  room: string;
  agentName: string;
  endMode: EndMode;
  maxDurationSeconds: number;
  now: number;
  deadlineAt: number;
};

function insertCall(db: D1Database, call: NewCall) {
  return db
    .prepare(
      `INSERT INTO calls (room, agent_name, end_mode, max_duration_seconds, created_at, deadline_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (room) DO NOTHING`,
    )
    .bind(
      call.room,
      call.agentName,
      call.endMode,
      call.maxDurationSeconds,
      call.now,
      call.deadlineAt,
    );
}

/** Opens a call the edge did not mint a token for (an explicit dispatch into an existing room). */
export async function openCall(db: D1Database, call: NewCall): Promise<void> {
  await insertCall(db, call).run();
}

/**
 * Who opened a call, for the open-call cap, and the cap itself. `key` null: nobody to cap (a
 * backend); `max` 0: the cap is off.
 */
export type OpenCallCap = { callerKey: string | null; maxOpenCalls: number };

/**
 * A caller's open calls, as the cap counts them: a call that started counts until it ends; one
 * that never started only while its last token can still be joined (an unused token, e.g. a page
 * that fetched one on load, stops holding a place when it expires).
 */
const COUNTED_OPEN_CALLS = `FROM calls WHERE caller_key = ?7 AND status = 'open'
  AND (started_at IS NOT NULL OR join_by > ?5)`;

/** Opens the call unless the caller already holds the cap: one statement, so a burst cannot overshoot. */
function insertCallWithinCap(db: D1Database, call: NewCall & OpenCallCap) {
  return db
    .prepare(
      `INSERT INTO calls (room, agent_name, end_mode, max_duration_seconds, created_at, deadline_at, caller_key)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
       WHERE ?7 IS NULL OR ?8 = 0 OR (SELECT COUNT(*) ${COUNTED_OPEN_CALLS}) < ?8
       ON CONFLICT (room) DO NOTHING`,
    )
    .bind(
      call.room,
      call.agentName,
      call.endMode,
      call.maxDurationSeconds,
      call.now,
      call.deadlineAt,
      call.callerKey,
      call.maxOpenCalls,
    );
}

/** How long until a place certainly frees up, told to a caller at the cap. */
const CAPPED_RETRY_MAX_SECONDS = 60;

/**
 * Records a token issued for `identity` in `room`; the first token for a room opens the call,
 * unless its caller already holds `maxOpenCalls` open calls (429 `too_many_open_calls`). A token
 * for a room that is already open never counts again. One round trip: the participant row is only
 * added while the call is open, and the returned row says whether the room name was already
 * spent or the cap refused it.
 */
export async function recordIssuedToken(
  db: D1Database,
  call: NewCall &
    OpenCallCap & { identity: string; /** When this token expires (epoch ms). */ joinBy: number },
): Promise<void> {
  const [, , , status, soonest] = await db.batch([
    insertCallWithinCap(db, call),
    // Every token for a room that has not started pushes out when it can still be joined, and the
    // backstop's deadline with it.
    db
      .prepare(
        `UPDATE calls SET join_by = MAX(COALESCE(join_by, 0), ?2), deadline_at = MAX(deadline_at, ?3)
         WHERE room = ?1 AND status = 'open' AND started_at IS NULL`,
      )
      .bind(call.room, call.joinBy, call.deadlineAt),
    db
      .prepare(
        `INSERT INTO call_participants (room, identity, issued_at)
         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM calls WHERE room = ?1 AND status = 'open')
         ON CONFLICT (room, identity) DO UPDATE SET issued_at = COALESCE(issued_at, excluded.issued_at)`,
      )
      .bind(call.room, call.identity, call.now),
    db.prepare('SELECT status FROM calls WHERE room = ?').bind(call.room),
    // Read in the same round trip, used only when the cap refused: when a place frees up for sure.
    db
      .prepare(
        `SELECT MIN(CASE WHEN started_at IS NULL THEN join_by ELSE deadline_at END) AS at
         FROM calls WHERE caller_key = ?1 AND status = 'open' AND (started_at IS NOT NULL OR join_by > ?2)`,
      )
      .bind(call.callerKey, call.now),
  ]);
  const row = status?.results[0] as { status?: string } | undefined;
  if (row?.status === 'ended')
    throw new ApiError(
      409,
      'call_ended',
      `room ${call.room} already hosted a call that ended; room names are single-use`,
    );
  if (!row) {
    const at = (soonest?.results[0] as { at?: number | null } | undefined)?.at ?? 0;
    // A started call frees its place when its caller hangs up, possibly long before its deadline.
    const wait = Math.min(CAPPED_RETRY_MAX_SECONDS, Math.max(1, Math.ceil((at - call.now) / 1000)));
    throw new ApiError(
      429,
      'too_many_open_calls',
      `this caller already has ${call.maxOpenCalls} open calls, the most allowed (MAX_OPEN_CALLS_PER_CALLER); end one, or retry after ${wait} s`,
      { 'Retry-After': String(wait) },
    );
  }
}

/** Runs a conditional write; whether it changed a row says whether this request won. */
async function changedRows(statement: D1PreparedStatement): Promise<boolean> {
  return (await statement.run()).meta.changes > 0;
}

export async function findCall(db: D1Database, room: string): Promise<CallRow | null> {
  return db.prepare('SELECT * FROM calls WHERE room = ?').bind(room).first<CallRow>();
}

/** Everything the ledger holds about one call: its row, its participants, its first report. */
export async function callRecord(db: D1Database, room: string) {
  const [calls, participants, reports] = await db.batch([
    db.prepare('SELECT * FROM calls WHERE room = ?').bind(room),
    db
      .prepare(
        'SELECT * FROM call_participants WHERE room = ? ORDER BY COALESCE(issued_at, joined_at), identity',
      )
      .bind(room),
    db
      .prepare('SELECT body FROM call_reports WHERE room = ? ORDER BY received_at LIMIT 1')
      .bind(room),
  ]);
  const row = calls?.results[0] as CallRow | undefined;
  if (!row) return null;
  const reportBody = (reports?.results[0] as { body: string } | undefined)?.body;
  return {
    row,
    participants: participants?.results as ParticipantRow[],
    report: reportBody ? (JSON.parse(reportBody) as CallReport) : null,
  };
}

export async function wasIssuedTo(
  db: D1Database,
  room: string,
  identity: string,
): Promise<boolean> {
  const row = await db
    .prepare(
      'SELECT 1 AS ok FROM call_participants WHERE room = ? AND identity = ? AND issued_at IS NOT NULL',
    )
    .bind(room, identity)
    .first();
  return row != null;
}

/** `open`, `ended` (calls that ended after they started), or `not_joined` (tokens never used). */
export type CallStatusFilter = 'open' | 'ended' | 'not_joined';
const STATUS_FILTERS: Record<CallStatusFilter, string> = {
  open: "status = 'open'",
  ended: "status = 'ended' AND end_reason IS NOT 'not_joined'",
  not_joined: "status = 'ended' AND end_reason = 'not_joined'",
};

export async function listCalls(
  db: D1Database,
  limit: number,
  cursor?: { createdAt: number; room: string },
  status?: CallStatusFilter,
) {
  const where = [
    ...(cursor ? ['(created_at, room) < (?2, ?3)'] : []),
    ...(status ? [STATUS_FILTERS[status]] : []),
  ];
  const stmt = db
    .prepare(
      `SELECT * FROM calls ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, room DESC LIMIT ?1`,
    )
    .bind(limit + 1, ...(cursor ? [cursor.createdAt, cursor.room] : []));
  const rows = (await stmt.all<CallRow>()).results;
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    calls: page,
    next: rows.length > limit && last ? { createdAt: last.created_at, room: last.room } : null,
  };
}

export type CallEnd = {
  reason: EndReason;
  endedBy: EndedBy;
  source: EndSource;
  at: number;
  note?: string | null;
  strong: boolean;
};

/**
 * Closes the call, or replaces an inferred end with an authoritative one. Returns whether the row
 * changed. The first authoritative end wins, so retries and late reports never rewrite history.
 */
export async function closeCall(db: D1Database, room: string, end: CallEnd): Promise<boolean> {
  const strength = end.strong ? 1 : 0;
  return changedRows(
    db
      .prepare(
        `UPDATE calls SET status = 'ended', ended_at = COALESCE(ended_at, ?2), end_reason = ?3, ended_by = ?4,
           end_source = ?5, end_strength = ?6, end_note = COALESCE(?7, end_note)
         WHERE room = ?1 AND (status = 'open' OR end_strength < ?6)`,
      )
      .bind(room, end.at, end.reason, end.endedBy, end.source, strength, end.note ?? null),
  );
}

export async function markAgentRemoved(db: D1Database, room: string, at: number): Promise<void> {
  await db
    .prepare('UPDATE calls SET agent_removed_at = COALESCE(agent_removed_at, ?2) WHERE room = ?1')
    .bind(room, at)
    .run();
}

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

/** Stores a report once per call id; returns false for a duplicate (a retry), which changes nothing. */
export async function storeReport(
  db: D1Database,
  report: CallReport,
  body: string,
  now: number,
): Promise<boolean> {
  return changedRows(
    db
      .prepare(
        'INSERT INTO call_reports (call_id, room, received_at, body) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (call_id) DO NOTHING',
      )
      .bind(report.call_id, report.room, now, body),
  );
}

/** Open calls whose room never started although their last token has expired (plus grace). */
export function unjoinedCalls(db: D1Database, now: number, graceMs: number, limit = 50) {
  return openCallsPast(db, 'join_by', now, graceMs, limit, 'AND started_at IS NULL');
}

/** The call's room exists after all (its start was not seen, e.g. no webhooks): it started. */
export async function markStarted(db: D1Database, room: string, at: number): Promise<void> {
  await db
    .prepare('UPDATE calls SET started_at = COALESCE(started_at, ?2) WHERE room = ?1')
    .bind(room, at)
    .run();
}

/** Open calls whose deadline (plus grace) has passed: the backstop owes them an end. */
export function overdueCalls(db: D1Database, now: number, graceMs: number, limit = 50) {
  return openCallsPast(db, 'deadline_at', now, graceMs, limit);
}

/** The cron's sweeps: open calls whose `column` plus grace lies before `now`, oldest first. */
async function openCallsPast(
  db: D1Database,
  column: 'deadline_at' | 'join_by',
  now: number,
  graceMs: number,
  limit: number,
  alsoWhere = '',
): Promise<{ room: string }[]> {
  return (
    await db
      .prepare(
        `SELECT room FROM calls WHERE status = 'open' ${alsoWhere}
           AND ${column} IS NOT NULL AND ${column} + ?2 < ?1 ORDER BY ${column} LIMIT ?3`,
      )
      .bind(now, graceMs, limit)
      .all<{ room: string }>()
  ).results;
}

/** The first person (not an agent) who joined the call's room, per the webhooks seen so far. */
export async function firstJoinedCaller(db: D1Database, room: string): Promise<string | undefined> {
  const row = await db
    .prepare(
      `SELECT identity FROM call_participants WHERE room = ? AND kind != 'AGENT'
         AND joined_at IS NOT NULL ORDER BY joined_at, identity LIMIT 1`,
    )
    .bind(room)
    .first<{ identity: string }>();
  return row?.identity;
}
