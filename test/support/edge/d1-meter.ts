/**
 * A D1 binding wrapped to count what the ledger costs (statements, round trips, rows read and
 * written, from D1's own result meta) and to inject failures. Used by the edge tests (fault
 * injection, row bounds) and by `npm run bench:ledger` (./metered-worker.ts).
 */
export type D1Counts = {
  /** SQL statements executed (each statement of a batch counts: D1 runs them one at a time). */
  statements: number;
  /** Requests to the database: one per `run`/`all`/`first`/`raw`, one per `batch`. */
  roundTrips: number;
  rowsRead: number;
  rowsWritten: number;
};

/** Decides whether statement number `n` (1-based, over the meter's life) fails, and how. */
export type FaultPlan = (sql: string, n: number) => Error | 'hang' | undefined;

export type MeteredD1 = {
  db: D1Database;
  counts: D1Counts;
  /** Every statement's SQL (whitespace collapsed) and its rows read, in order. */
  log: { sql: string; rowsRead: number; rowsWritten: number }[];
  reset(): void;
};

const INNER = Symbol('inner');
type Wrapped = D1PreparedStatement & { [INNER]: D1PreparedStatement; sql: string };

export function meteredD1(inner: D1Database, fail: FaultPlan = () => undefined): MeteredD1 {
  const counts: D1Counts = { statements: 0, roundTrips: 0, rowsRead: 0, rowsWritten: 0 };
  const log: MeteredD1['log'] = [];
  let n = 0;

  const check = async (sql: string) => {
    n += 1;
    const fault = fail(sql, n);
    if (fault === 'hang') await new Promise(() => {});
    if (fault) throw fault;
  };
  const tally = (sql: string, meta: Partial<D1Meta> | undefined) => {
    const rowsRead = meta?.rows_read ?? 0;
    const rowsWritten = meta?.rows_written ?? 0;
    counts.rowsRead += rowsRead;
    counts.rowsWritten += rowsWritten;
    log.push({ sql, rowsRead, rowsWritten });
  };

  const wrap = (stmt: D1PreparedStatement, sql: string): Wrapped => {
    const one = async <T>(fn: () => Promise<D1Result<T>>): Promise<D1Result<T>> => {
      counts.roundTrips += 1;
      counts.statements += 1;
      await check(sql);
      const result = await fn();
      tally(sql, result.meta);
      return result;
    };
    const w = {
      [INNER]: stmt,
      sql,
      bind: (...values: unknown[]) => wrap(stmt.bind(...values), sql),
      run: <T>() => one(() => stmt.run<T>()),
      all: <T>() => one(() => stmt.all<T>()),
      first: async <T>(column?: string) => {
        const { results } = await one(() => stmt.all<Record<string, unknown>>());
        const row = results[0];
        if (!row) return null;
        return (column ? row[column] : row) as T;
      },
      raw: async () => {
        const { results } = await one(() => stmt.all<Record<string, unknown>>());
        return results.map((r) => Object.values(r));
      },
    };
    return w as unknown as Wrapped;
  };

  const db = {
    prepare: (sql: string) => wrap(inner.prepare(sql), sql.replace(/\s+/g, ' ').trim()),
    batch: async (statements: Wrapped[]) => {
      counts.roundTrips += 1;
      counts.statements += statements.length;
      for (const s of statements) await check(s.sql);
      const results = await inner.batch(statements.map((s) => s[INNER]));
      results.forEach((r, i) => tally(statements[i]!.sql, r.meta));
      return results;
    },
    exec: (sql: string) => inner.exec(sql),
    withSession: () => db,
    dump: () => inner.dump(),
  };
  return {
    db: db as unknown as D1Database,
    counts,
    log,
    reset() {
      Object.assign(counts, { statements: 0, roundTrips: 0, rowsRead: 0, rowsWritten: 0 });
      log.length = 0;
    },
  };
}
