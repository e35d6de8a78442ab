import { dispose } from '@livekit/rtc-node';
import { afterAll, beforeAll, inject } from 'vitest';
import { chromiumPath, HOW_TO_GET_CHROMIUM } from './browser.ts';
import { HOW_TO_GET_PYTHON_CLIENT, pythonClientPath } from './python-client.ts';
import { redisServerPath } from './redis-server.ts';
import { speechToolsMissing } from './speech.ts';
import { System, type SystemOptions } from './system.ts';

/** What a file needs besides the LiveKit server, and how to get it when the machine lacks it. */
const NEEDS = {
  chromium: () => (chromiumPath() ? undefined : HOW_TO_GET_CHROMIUM),
  speech: speechToolsMissing,
  redis: () =>
    redisServerPath() ? undefined : 'redis-server (Debian: apt-get install redis-server)',
  python: () => (pythonClientPath() ? undefined : HOW_TO_GET_PYTHON_CLIENT),
} satisfies Record<string, () => string | undefined>;

export type FileSystemOptions = SystemOptions & { needs?: (keyof typeof NEEDS)[] };

/**
 * The one way an e2e file stands up the system: started before its tests, stopped after them with
 * the callers and extra workers it tracks, rtc-node's native side freed. Without a LiveKit server,
 * or a tool in `needs`, the file's tests skip with how to get it (`describe.skipIf(system.skipped)`),
 * except under CI=true, where anything missing fails the run.
 */
export function systemForThisFile(
  what: string,
  { needs = [], ...opts }: FileSystemOptions = {},
): System & { readonly skipped: boolean } {
  const bin = inject('livekitServerBin');
  const missing = needs.map((n) => NEEDS[n]()).find(Boolean);
  if (missing && process.env.CI === 'true') throw new Error(`${what} need ${missing}`);
  if (missing) console.warn(`\n*** ${what} SKIPPED: install ${missing}.\n`);
  const system = Object.assign(new System(bin, opts), { skipped: !bin || !!missing });
  beforeAll(async () => {
    if (!system.skipped) await system.start();
  });
  afterAll(async () => {
    await system.stop();
    await dispose();
  });
  return system;
}
