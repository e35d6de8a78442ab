/**
 * A call object's tables: the archive's (edge/migrations) as its latest migration leaves them, so
 * the ledger's statements run on both, but without the archive's indexes (they serve lists and
 * sweeps over many calls; an object holds one call, and every index would cost a write on each
 * change) and keyed by their primary keys (WITHOUT ROWID, for the same reason). A D1 migration
 * that adds or changes a column gets a step here too, applied by each object the first time it
 * wakes after the deploy; a test compares the columns with the migrated archive's.
 */
const STEPS = [
  // 1: the archive as of 0007_end_caller.sql.
  `CREATE TABLE calls (
    room TEXT PRIMARY KEY,
    room_sid TEXT,
    agent_name TEXT NOT NULL,
    end_mode TEXT NOT NULL,
    max_duration_seconds INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    deadline_at INTEGER NOT NULL,
    started_at INTEGER,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ended')),
    ended_at INTEGER,
    end_reason TEXT,
    ended_by TEXT,
    end_source TEXT,
    end_strength INTEGER,
    end_note TEXT,
    agent_removed_at INTEGER,
    dispatch_id TEXT,
    join_by INTEGER,
    revival_attempts INTEGER NOT NULL DEFAULT 0,
    last_revival_at INTEGER,
    last_revival_sid TEXT,
    caller_key TEXT,
    sweep_until INTEGER,
    agent_job_id TEXT,
    agent_admitted_at INTEGER,
    end_caller_kind TEXT,
    end_caller_identity TEXT
  ) WITHOUT ROWID;
  CREATE TABLE call_participants (
    room TEXT NOT NULL,
    identity TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'STANDARD',
    issued_at INTEGER,
    joined_at INTEGER,
    left_at INTEGER,
    disconnect_reason TEXT,
    PRIMARY KEY (room, identity)
  ) WITHOUT ROWID;
  CREATE TABLE call_reports (
    call_id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL
  ) WITHOUT ROWID;`,
];

/** The tables the archive and a call object share (the archive's others are its own). */
export const CALL_TABLES = ['calls', 'call_participants', 'call_reports'];

/** Whether this object's storage holds a call's tables (a read: an untracked room's stays empty). */
export function hasCallStorage(storage: DurableObjectStorage): boolean {
  return (
    storage.sql
      .exec<{ n: number }>(
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_steps'",
      )
      .one().n > 0
  );
}

/** Applies, in one transaction, the steps this object's storage has not had yet. */
export function migrateCallStorage(storage: DurableObjectStorage): void {
  const sql = storage.sql;
  const done = hasCallStorage(storage)
    ? sql.exec<{ n: number }>('SELECT n FROM schema_steps').one().n
    : 0;
  if (done >= STEPS.length) return;
  storage.transactionSync(() => {
    for (const step of STEPS.slice(done)) sql.exec(step);
    sql.exec('CREATE TABLE IF NOT EXISTS schema_steps (n INTEGER NOT NULL)');
    sql.exec('DELETE FROM schema_steps');
    sql.exec('INSERT INTO schema_steps (n) VALUES (?)', STEPS.length);
  });
}
