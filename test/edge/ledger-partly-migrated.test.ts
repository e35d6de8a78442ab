import { applyD1Migrations } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { withLedger } from '../../edge/http/ledger-guard.ts';
import {
  ADMIN,
  APP,
  call,
  expectError,
  fakeLiveKit,
  testEnv,
  type ApiResponse,
} from '../support/edge/helpers.ts';

type Migration = Parameters<typeof applyD1Migrations>[1][number];
const MIGRATIONS = (testEnv as unknown as { TEST_MIGRATIONS: Migration[] }).TEST_MIGRATIONS;
const COMMAND = 'npx wrangler d1 migrations apply LEDGER --local';

/**
 * Storage is per test file: this file empties its database (tables, views, the migrations record)
 * and applies the migrations up to `last` only, as a deploy that pulled newer ones and skipped
 * `migrations apply` leaves it.
 */
async function migrateUpTo(last: string): Promise<void> {
  const { results } = await testEnv.LEDGER.prepare(
    "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
  ).all<{ type: string; name: string }>();
  // Newest first: a table that references another goes before it.
  for (const { type, name } of results.reverse())
    await testEnv.LEDGER.exec(`DROP ${type.toUpperCase()} IF EXISTS "${name}"`);
  const upTo = MIGRATIONS.findIndex((m) => m.name.startsWith(last));
  expect(upTo).toBeGreaterThanOrEqual(0);
  await applyD1Migrations(testEnv.LEDGER, MIGRATIONS.slice(0, upTo + 1));
}

function expectNotMigrated(res: ApiResponse) {
  const { message } = expectError(res, 503, 'ledger_not_migrated');
  expect(message).toContain(COMMAND);
  expect(message).not.toContain('did not answer');
  // Retrying cannot help: no Retry-After, so no client waits for it.
  expect(res.headers.get('retry-after')).toBeNull();
}

describe('a ledger whose latest migrations were not applied names the command, not an outage', () => {
  it.each(['open', 'ended', 'not_joined'])(
    'answers GET /calls?status=%s, whose index a later migration adds, with ledger_not_migrated',
    async (status) => {
      await migrateUpTo('0004_');
      expectNotMigrated(await call(`/calls?status=${status}`, { headers: ADMIN }));
    },
  );

  it('answers an end whose archive needs columns a later migration adds with ledger_not_migrated', async () => {
    await migrateUpTo('0006_');
    const room = `partly-${crypto.randomUUID()}`;
    const issued = await call('/token', {
      headers: APP,
      json: { room_name: room, participant_identity: 'p' },
    });
    expect(issued.status).toBe(201);
    fakeLiveKit();
    expectNotMigrated(
      await call(`/calls/${room}/end`, { headers: ADMIN, json: { mode: 'end_for_all' } }),
    );
  });

  // Each way SQLite says the schema lacks something a statement needs, from the real D1.
  it.each([
    ['a table', 'SELECT * FROM no_such_table'],
    ['a column read', 'SELECT no_such_column FROM calls'],
    ['a column written', "INSERT INTO calls (room, no_such_column) VALUES ('x', 1)"],
    ['an index named', 'SELECT room FROM calls INDEXED BY no_such_index'],
    [
      'the unique index an upsert needs',
      "INSERT INTO call_reports (call_id, room) VALUES ('c', 'r') ON CONFLICT (room) DO NOTHING",
    ],
  ])('takes a statement needing %s it lacks as not migrated', async (_name, sql) => {
    await migrateUpTo('0005_');
    const failure = await withLedger('run it', () => testEnv.LEDGER.prepare(sql).run()).then(
      () => undefined,
      (err: unknown) => err as { status: number; code: string; message: string; headers: object },
    );
    expect(failure).toMatchObject({ status: 503, code: 'ledger_not_migrated', headers: {} });
    expect(failure!.message).toContain(COMMAND);
  });

  it('still calls a failure that is not about the schema an outage, with Retry-After', async () => {
    const failure = await withLedger('run it', () =>
      testEnv.LEDGER.prepare("SELECT json_extract('not json', '$')").run(),
    ).then(
      () => undefined,
      (err: unknown) => err as { code: string; headers: Record<string, string> },
    );
    expect(failure).toMatchObject({ code: 'ledger_unavailable', headers: { 'Retry-After': '5' } });
  });
});
