import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-plugin';
import { execFileSync } from 'node:child_process';
import { defineConfig } from 'vitest/config';
import { edgeTestBindings } from './test/support/edge-test-bindings.ts';

// Four projects: `edge` runs inside workerd with local D1 and rate limits; `agent` and `web` are
// Node unit tests; `e2e` drives the real LiveKit server, workerd, the built agent and the call page
// in Chromium (test/support/system.ts).
export default defineConfig(async () => {
  // wrangler.toml serves the built call page as static assets: the Worker's config needs it.
  execFileSync(process.execPath, ['edge/web/build.ts'], { stdio: 'inherit' });
  const migrations = await readD1Migrations('edge/migrations');
  return {
    test: {
      projects: [
        {
          plugins: [
            cloudflareTest({
              main: './edge/index.ts',
              wrangler: { configPath: './wrangler.toml' },
              miniflare: {
                bindings: { ...(await edgeTestBindings()), TEST_MIGRATIONS: migrations },
              },
            }),
          ],
          test: {
            name: 'edge',
            include: ['test/edge/**/*.test.ts'],
            setupFiles: ['test/support/edge/setup.ts'],
            // vitest's default on a 2-core machine is one file at a time; these are CPU-bound.
            maxWorkers: 2,
            silent: 'passed-only',
          },
        },
        {
          test: {
            name: 'agent',
            include: ['test/agent/**/*.test.ts'],
            environment: 'node',
            maxWorkers: 2,
            testTimeout: 30_000,
            silent: 'passed-only',
          },
        },
        {
          test: {
            name: 'web',
            include: ['test/web/**/*.test.ts'],
            environment: 'node',
            maxWorkers: 2,
            silent: 'passed-only',
          },
        },
        {
          test: {
            name: 'e2e',
            include: ['test/e2e/**/*.test.ts'],
            // rtc-node logs at debug unless NODE_ENV=production: thousands of lines per run that
            // bury a failure in CI's output. LK_RTC_DEBUG=1 brings them back.
            env: process.env.LK_RTC_DEBUG ? {} : { NODE_ENV: 'production' },
            environment: 'node',
            testTimeout: 90_000,
            hookTimeout: 180_000,
            // Three files side by side: each stands up its own LiveKit, edge and agent (no test
            // leans on another's), and most of a file's time is spent waiting on LiveKit's and
            // agents-js's timeouts, not on the CPU. Ports come from a band per worker.
            maxWorkers: 3,
            silent: 'passed-only',
            globalSetup: ['test/support/e2e-global-setup.ts'],
          },
        },
      ],
    },
  };
});
