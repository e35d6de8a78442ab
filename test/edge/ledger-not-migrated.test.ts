import { beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, bearerFor, call, expectError, testEnv } from '../support/edge/helpers.ts';

// A fresh clone's `wrangler dev`: a local D1 no migration was ever applied to. Storage is per test
// file, so this file empties its own database (tables, views, the migrations record) first.
beforeAll(async () => {
  const { results } = await testEnv.LEDGER.prepare(
    "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
  ).all<{ type: string; name: string }>();
  const views = results.filter((r) => r.type === 'view');
  const tables = results.filter((r) => r.type === 'table');
  for (const { type, name } of [...views, ...tables])
    await testEnv.LEDGER.exec(`DROP ${type.toUpperCase()} IF EXISTS "${name}"`);
  const left = await testEnv.LEDGER.prepare(
    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
  ).first<{ n: number }>();
  expect(left?.n).toBe(0);
});

describe('a ledger without tables names the migration command instead of blaming an outage', () => {
  it('POST /token (the first thing a newcomer tries) answers 503 ledger_not_migrated, no token', async () => {
    const res = await call('/token', {
      headers: await bearerFor('newcomer'),
      json: { participant_name: 'Me' },
    });
    const error = expectError(res, 503, 'ledger_not_migrated');
    expect(error.message).toContain('npx wrangler d1 migrations apply LEDGER --local');
    expect(error.message).toMatch(/no such table: \w+/);
    expect(error.message).not.toContain('did not answer');
    // Retrying cannot help: no Retry-After.
    expect(res.headers.get('retry-after')).toBeNull();
    expect(JSON.stringify(res.data)).not.toContain('participant_token');
  });

  it('the ledger API says the same', async () => {
    const res = await call('/calls?status=open', { headers: ADMIN });
    expectError(res, 503, 'ledger_not_migrated');
  });
});
