import { dispose } from '@livekit/rtc-node';
import { afterAll, beforeAll } from 'vitest';
import { System, type SystemOptions } from './system.ts';

/**
 * One e2e file's system: started before its tests when a LiveKit server was found, and after them
 * stopped with the callers it tracks (`system.callers`), rtc-node's native side freed.
 */
export function systemForThisFile(bin: string, opts: SystemOptions = {}): System {
  const system = new System(bin, opts);
  beforeAll(async () => {
    if (bin) await system.start();
  });
  afterAll(async () => {
    await system.stop();
    await dispose();
  });
  return system;
}
