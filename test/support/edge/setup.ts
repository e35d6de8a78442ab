import { applyD1Migrations, env } from 'cloudflare:test';

await applyD1Migrations(
  env.LEDGER,
  (env as unknown as { TEST_MIGRATIONS: Parameters<typeof applyD1Migrations>[1] }).TEST_MIGRATIONS,
);
