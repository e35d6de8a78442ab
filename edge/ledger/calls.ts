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

/** A new call's columns as ?1–?6: room, agent_name, end_mode, max_duration_seconds, created_at, deadline_at. */
export const newCallParams = (call: NewCall) => [
  call.room,
  call.agentName,
  call.endMode,
  call.maxDurationSeconds,
  call.now,
  call.deadlineAt,
];

function insertCall(db: D1Database, call: NewCall) {
  return db
    .prepare(
      `INSERT INTO calls (room, agent_name, end_mode, max_duration_seconds, created_at, deadline_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (room) DO NOTHING`,
    )
    .bind(...newCallParams(call));
}

/** Opens a call the edge did not mint a token for (an explicit dispatch into an existing room). */
export async function openCall(db: D1Database, call: NewCall): Promise<void> {
  await insertCall(db, call).run();
}

/** Runs a conditional write; whether it changed a row says whether this request won. */
export async function changedRows(statement: D1PreparedStatement): Promise<boolean> {
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
