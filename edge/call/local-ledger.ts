/**
 * The call object's own SQLite, spoken to as D1: the ledger's statements (edge/ledger) run
 * unchanged on the live state of one call, so one set of rules (first strong end wins, the
 * revival guard, the inferred end) decides in the object and in the archive alike. Only what the
 * ledger uses: prepare, bind, first, all, run and batch. A batch is one transaction, as in D1.
 */
export function localLedger(storage: DurableObjectStorage): D1Database {
  const sql = storage.sql;
  const run = (query: string, params: unknown[]): D1Result => {
    const cursor = sql.exec(query, ...params);
    const results = cursor.toArray();
    // SQLite's own count of rows the statement inserted, updated or deleted, as D1's meta says it.
    const changes = sql.exec<{ n: number }>('SELECT changes() AS n').one().n;
    return {
      success: true,
      results,
      meta: { changes, rows_read: cursor.rowsRead, rows_written: cursor.rowsWritten },
    } as unknown as D1Result;
  };
  const statement = (query: string, params: unknown[] = []) => {
    const stmt = {
      query,
      params,
      bind: (...values: unknown[]) => statement(query, values),
      run: async () => run(query, params),
      all: async () => run(query, params),
      first: async () => (run(query, params).results[0] as unknown) ?? null,
    };
    return stmt;
  };
  return {
    prepare: (query: string) => statement(query),
    batch: async (statements: ReturnType<typeof statement>[]) =>
      storage.transactionSync(() => statements.map((s) => run(s.query, s.params))),
  } as unknown as D1Database;
}
