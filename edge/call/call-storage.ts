import type { CallRow } from '../ledger/calls.ts';

type Row = Record<string, SqlStorageValue>;
/** All the archive holds about one call, as rows: what a call object imports. */
export type CallRecordRows = { row: CallRow; participants: Row[]; reports: Row[] };

/**
 * Reads one call's rows from the archive in one statement (its participants and reports as JSON
 * beside its row); null when it has none.
 */
export async function exportCall(db: D1Database, room: string): Promise<CallRecordRows | null> {
  const found = await db
    .prepare(
      `SELECT c.*,
         (SELECT json_group_array(json_object('room', room, 'identity', identity, 'kind', kind,
            'issued_at', issued_at, 'joined_at', joined_at, 'left_at', left_at,
            'disconnect_reason', disconnect_reason))
          FROM call_participants WHERE room = c.room) AS participants_json,
         (SELECT json_group_array(json_object('call_id', call_id, 'room', room,
            'received_at', received_at, 'body', body))
          FROM call_reports WHERE room = c.room) AS reports_json
       FROM calls c WHERE c.room = ?`,
    )
    .bind(room)
    .first<CallRow & { participants_json: string; reports_json: string }>();
  if (!found) return null;
  const { participants_json, reports_json, ...row } = found;
  return {
    row,
    participants: JSON.parse(participants_json) as Row[],
    reports: JSON.parse(reports_json) as Row[],
  };
}

/** The tokens the archive recorded for a call: who, and when first. */
export async function issuedTokens(db: D1Database, room: string): Promise<Row[]> {
  const { results } = await db
    .prepare(
      'SELECT room, identity, issued_at FROM call_participants WHERE room = ? AND issued_at IS NOT NULL',
    )
    .bind(room)
    .all<Row>();
  return results;
}

/** Writes the archive's rows of one call into the object's storage, in one transaction. */
export function importCall(storage: DurableObjectStorage, record: CallRecordRows): void {
  storage.transactionSync(() => {
    insertRows(storage.sql, 'calls', [record.row as unknown as Row]);
    insertRows(storage.sql, 'call_participants', record.participants);
    insertRows(storage.sql, 'call_reports', record.reports);
  });
}

/**
 * The later join-by and deadline the archive holds for a call not yet started (every token for
 * its room pushes them out); a call that started keeps its own.
 */
export function takeLaterJoinBy(storage: DurableObjectStorage, archived: CallRow): void {
  storage.sql.exec(
    `UPDATE calls SET
       join_by = IIF(status = 'open' AND started_at IS NULL AND ?2 IS NOT NULL,
         MAX(COALESCE(join_by, ?2), ?2), join_by),
       deadline_at = IIF(status = 'open' AND started_at IS NULL, MAX(deadline_at, ?3), deadline_at)
     WHERE room = ?1`,
    archived.room,
    archived.join_by,
    archived.deadline_at,
  );
}

/** Tokens the archive recorded (issuedTokens): each one's participant row, issued when first. */
export function takeIssuedTokens(storage: DurableObjectStorage, tokens: Row[]): void {
  storage.transactionSync(() => {
    for (const t of tokens)
      storage.sql.exec(
        `INSERT INTO call_participants (room, identity, issued_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (room, identity) DO UPDATE SET issued_at = COALESCE(issued_at, excluded.issued_at)`,
        t.room,
        t.identity,
        t.issued_at,
      );
  });
}

/** Inserts rows into a table of the object's storage, the columns both know (any archive age). */
function insertRows(sql: SqlStorage, table: string, rows: Row[]): void {
  if (!rows.length) return;
  const known = new Set(
    sql
      .exec<{ name: string }>(`SELECT name FROM pragma_table_info('${table}')`)
      .toArray()
      .map((c) => c.name),
  );
  for (const row of rows) {
    const columns = Object.keys(row).filter((k) => known.has(k));
    sql.exec(
      `INSERT OR IGNORE INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
      ...columns.map((k) => row[k] ?? null),
    );
  }
}
