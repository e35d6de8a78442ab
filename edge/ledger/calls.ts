import type { CallReport, EndedBy, EndMode, EndReason } from '../../wire-contract/index.ts';

/** Who wrote an end: the API, the agent's report, a webhook, the call's own deadline alarm, or the cron's sweep. */
export type EndSource = 'api' | 'agent' | 'webhook' | 'deadline' | 'cron';

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
  /** Who asked for the end through the API, when one did (migration 0007). */
  end_caller_kind: EndCaller['kind'] | null;
  end_caller_identity: string | null;
  agent_removed_at: number | null;
  dispatch_id: string | null;
  join_by: number | null;
  /** Who opened the call, for the open-call cap (migration 0004); null for backends. */
  caller_key: string | null;
  /** Rooms LiveKit recreated for this call after it ended (edge/ledger/revivals.ts). */
  revival_attempts: number;
  last_revival_at: number | null;
  last_revival_sid: string | null;
  /** The agent job admitted for this call (edge/ledger/admissions.ts), and when. */
  agent_job_id: string | null;
  agent_admitted_at: number | null;
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

/**
 * Opens the call unless the caller already holds the cap (one statement, so a burst cannot
 * overshoot), or, for a room already open, pushes out when its tokens can still be joined and the
 * backstop's deadline with it (every token for a room that has not started does). Returns the
 * call's status; no row when the cap refused a new call. A token for a room that exists never
 * counts against the cap again.
 */
function upsertCallWithinCap(db: D1Database, call: NewCall & OpenCallCap & { joinBy: number }) {
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
    .bind(
      call.room,
      call.agentName,
      call.endMode,
      call.maxDurationSeconds,
      call.now,
      call.deadlineAt,
      call.callerKey,
      call.maxOpenCalls,
      call.joinBy,
    );
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
  call: NewCall &
    OpenCallCap & { identity: string; /** When this token expires (epoch ms). */ joinBy: number },
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

/**
 * What a caller may read of its call: the call's row and, for a caller with an identity, its own
 * participant row (one round trip; never the report nor anyone else's row).
 */
export async function callerRecord(db: D1Database, room: string, identity: string | null) {
  const [calls, own] = await db.batch([
    db.prepare('SELECT * FROM calls WHERE room = ?').bind(room),
    db
      .prepare('SELECT * FROM call_participants WHERE room = ? AND identity = ?')
      .bind(room, identity),
  ]);
  const row = calls?.results[0] as CallRow | undefined;
  if (!row) return null;
  return { row, own: own?.results[0] as ParticipantRow | undefined };
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
/** Each filter reads its own partial index (migration 0005): a page costs about a page of rows. */
const STATUS_FILTERS: Record<CallStatusFilter, { where: string; index: string }> = {
  open: { where: "status = 'open'", index: 'calls_open_by_created' },
  ended: {
    where: "status = 'ended' AND end_reason IS NOT 'not_joined'",
    index: 'calls_ended_by_created',
  },
  not_joined: {
    where: "status = 'ended' AND end_reason = 'not_joined'",
    index: 'calls_not_joined_by_created',
  },
};

export async function listCalls(
  db: D1Database,
  limit: number,
  cursor?: { createdAt: number; room: string },
  status?: CallStatusFilter,
) {
  const filter = status ? STATUS_FILTERS[status] : undefined;
  const where = [
    // A range on created_at the index can seek to, then the tie on room.
    ...(cursor ? ['created_at <= ?2 AND (created_at < ?2 OR room < ?3)'] : []),
    ...(filter ? [filter.where] : []),
  ];
  const stmt = db
    .prepare(
      `SELECT * FROM calls INDEXED BY ${filter?.index ?? 'calls_by_created'}
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
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

/**
 * Who asked for an end through `POST /calls/:room/end`: the kind of credential, and for an end
 * user or a participant its identity (null for the admin and app keys).
 */
export type EndCaller = {
  kind: 'admin' | 'app' | 'user' | 'participant';
  identity: string | null;
};

export type CallEnd = {
  reason: EndReason;
  endedBy: EndedBy;
  source: EndSource;
  at: number;
  note?: string | null;
  strong: boolean;
  /** The API caller who asked for this end; its note is the caller's own (closeCall only). */
  caller?: EndCaller;
  /**
   * Applies to an open call only, never replacing an inferred end (closeCall only). For ends a
   * caller (not an operator) asks for: such an end is authoritative, so replacing an inferred
   * one would also stop the agent's later report from saying how the call really ended.
   */
  onlyIfOpen?: boolean;
};

/**
 * Closes the call, or replaces an inferred end with an authoritative one. Returns whether the row
 * changed. The first authoritative end wins, so retries and late reports never rewrite history.
 * An end an API caller asked for records who asked, and its note (or none) replaces any earlier
 * one: a note is shown under its caller's name, never under another's. Such an end is always
 * authoritative, so no later end replaces it and the other writers never touch these columns.
 */
export async function closeCall(db: D1Database, room: string, end: CallEnd): Promise<boolean> {
  return changedRows(
    db
      .prepare(
        `UPDATE calls SET status = 'ended', ended_at = COALESCE(ended_at, ?2), end_reason = ?3, ended_by = ?4,
           end_source = ?5, end_strength = ?6, end_note = IIF(?8 IS NULL, COALESCE(?7, end_note), ?7),
           end_caller_kind = ?8, end_caller_identity = ?9
         WHERE room = ?1 AND ${end.onlyIfOpen ? "status = 'open'" : END_APPLIES}`,
      )
      .bind(room, ...endParams(end), end.caller?.kind ?? null, end.caller?.identity ?? null),
  );
}

/** An end applies to an open call, or replaces a weaker one (strength in ?6). */
const END_APPLIES = "(status = 'open' OR end_strength < ?6)";
const endParams = (end: CallEnd) => [
  end.at,
  end.reason,
  end.endedBy,
  end.source,
  end.strong ? 1 : 0,
  end.note ?? null,
];

/**
 * Closes many calls with the same end in one statement (the cron); returns the rooms it closed.
 * `alsoWhere` narrows it further (e.g. still unstarted).
 */
export async function closeCalls(
  db: D1Database,
  rooms: string[],
  end: CallEnd,
  alsoWhere = '',
): Promise<string[]> {
  if (!rooms.length) return [];
  const { results } = await db
    .prepare(
      `UPDATE calls SET status = 'ended', ended_at = COALESCE(ended_at, ?2), end_reason = ?3, ended_by = ?4,
         end_source = ?5, end_strength = ?6, end_note = COALESCE(?7, end_note), sweep_until = NULL
       WHERE room IN (SELECT value FROM json_each(?1)) AND ${END_APPLIES} ${alsoWhere}
       RETURNING room`,
    )
    .bind(JSON.stringify(rooms), ...endParams(end))
    .all<{ room: string }>();
  return results.map((r) => r.room);
}

/**
 * The agent's report, in one round trip: stored once per call id (a duplicate, a retry, is not
 * stored again) and applied to the call in one write (its start, and its end unless a stronger
 * one stands), the latter also on a duplicate, so a retry after a write that failed halfway still
 * closes the call. `found` is false for a room the ledger does not know (nothing is written).
 */
export async function recordReport(
  db: D1Database,
  report: CallReport,
  body: string,
  now: number,
  end: CallEnd,
): Promise<{ found: boolean; stored: boolean }> {
  const applies = END_APPLIES;
  const [stored, call] = await db.batch([
    db
      .prepare(
        `INSERT INTO call_reports (call_id, room, received_at, body)
         SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM calls WHERE room = ?2)
         ON CONFLICT (call_id) DO NOTHING`,
      )
      .bind(report.call_id, report.room, now, body),
    db
      .prepare(
        `UPDATE calls SET started_at = COALESCE(started_at, ?8),
           status = IIF(${applies}, 'ended', status),
           ended_at = IIF(${applies}, COALESCE(ended_at, ?2), ended_at),
           end_reason = IIF(${applies}, ?3, end_reason),
           ended_by = IIF(${applies}, ?4, ended_by),
           end_source = IIF(${applies}, ?5, end_source),
           end_note = IIF(${applies}, COALESCE(?7, end_note), end_note),
           end_strength = IIF(${applies}, ?6, end_strength)
         WHERE room = ?1 RETURNING room`,
      )
      .bind(report.room, ...endParams(end), Date.parse(report.started_at)),
  ]);
  return { found: (call?.results.length ?? 0) > 0, stored: (stored?.meta.changes ?? 0) > 0 };
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
