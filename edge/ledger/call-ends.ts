import type { CallReport, EndedBy, EndReason } from '../../wire-contract/index.ts';
import { changedRows, type EndCaller, type EndSource } from './calls.ts';

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
