import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  announceDrain,
  chooseDrainFile,
  DRAIN_FILE_ENV,
  readDrainDeadline,
} from '../../agent/drain-signal.ts';

describe('the drain signal', () => {
  it('picks a new file every boot and hands it to the jobs through the environment', () => {
    const a: NodeJS.ProcessEnv = {};
    const b: NodeJS.ProcessEnv = {};
    chooseDrainFile(a);
    chooseDrainFile(b);
    expect(a[DRAIN_FILE_ENV]).toBeTruthy();
    expect(a[DRAIN_FILE_ENV]).not.toBe(b[DRAIN_FILE_ENV]);
  });

  it('never reads a file another boot left behind, even for the same pid', () => {
    const env: NodeJS.ProcessEnv = {};
    const path = chooseDrainFile(env);
    const stale = join(tmpdir(), `livekit-voice-agent-drain-${process.pid}.json`); // the old fixed name
    writeFileSync(stale, JSON.stringify({ deadline: 1 }));
    expect(readDrainDeadline(path)).toBeUndefined();
  });

  it('writes the deadline whole (write, then rename), leaving no partial file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'drain-'));
    const path = join(dir, 'drain.json');
    expect(announceDrain(12345, path)).toBe(true);
    expect(readDrainDeadline(path)).toBe(12345);
    expect(readdirSync(dir)).toEqual(['drain.json']);
  });

  it('answers false instead of throwing when the file cannot be written', () => {
    const path = join(tmpdir(), 'no-such-dir-for-drain', 'deep', 'drain.json');
    expect(announceDrain(1, path)).toBe(false);
    expect(existsSync(path)).toBe(false);
  });
});
