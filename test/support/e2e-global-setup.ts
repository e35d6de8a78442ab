import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { livekitCacheDir, LIVEKIT_SERVER_VERSION, resolveLiveKitServer } from './livekit-server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    livekitServerBin: string;
  }
}

/**
 * Once per e2e run: find (or build) the LiveKit server and build the agent. Without a server the
 * e2e tests skip with instructions, except under CI=true, where a missing server fails the run.
 */
export default function setup(project: TestProject) {
  const bin = resolveLiveKitServer();
  if (!bin) {
    const how = `install Go >= 1.26 (then npm test builds it into ${livekitCacheDir()}), or put livekit-server ${LIVEKIT_SERVER_VERSION} on PATH, or set LIVEKIT_SERVER_BIN`;
    if (process.env.CI === 'true') throw new Error(`e2e: no LiveKit server and CI=true: ${how}`);
    console.warn(`\n*** e2e tests SKIPPED: no LiveKit server found. To run them: ${how}.\n`);
  }
  project.provide('livekitServerBin', bin ?? '');
  execFileSync(process.execPath, ['agent/build.ts'], {
    cwd: resolve(import.meta.dirname, '../..'),
    stdio: 'pipe',
  });
}
