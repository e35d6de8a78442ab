import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  announceDrain,
  chooseDrainFile,
  clearDrain,
  DRAIN_FILE_ENV,
  readDrainDeadline,
  watchDrain,
} from '../../agent/process/drain-signal.ts';

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

// The job's side: watchDrain polls the file the worker wrote and ends the call at its deadline.
// Without it a draining call runs on until agents-js' own drain timeout (DRAIN_TIMEOUT_SECONDS plus
// the whole per-call end budget, shutdownBudget in agent/config.ts), far past the deadline.
describe('the drain watcher', () => {
  const POLL_MS = 500;
  let path: string;
  beforeEach(() => {
    // Only timers and the clock are faked: the file is really written and read.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'Date'] });
    vi.setSystemTime(1_700_000_000_000);
    path = join(mkdtempSync(join(tmpdir(), 'drain-watch-')), 'drain.json');
  });
  afterEach(() => vi.useRealTimers());

  function watch() {
    const firedAt: number[] = [];
    const stop = watchDrain(() => firedAt.push(Date.now()), { pollMs: POLL_MS, path });
    return { firedAt, stop };
  }

  it('fires once, within one poll after the deadline in the file, and never before it', async () => {
    const { firedAt, stop } = watch();
    const deadline = Date.now() + 4_000;
    expect(announceDrain(deadline, path)).toBe(true);
    await vi.advanceTimersByTimeAsync(3_999);
    expect(firedAt).toEqual([]);
    await vi.advanceTimersByTimeAsync(POLL_MS + 1);
    expect(firedAt).toHaveLength(1);
    expect(firedAt[0]).toBeGreaterThanOrEqual(deadline);
    expect(firedAt[0]).toBeLessThanOrEqual(deadline + POLL_MS);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(firedAt).toHaveLength(1);
    stop();
  });

  it('does nothing while there is no drain, then fires for a drain announced during the call', async () => {
    const { firedAt, stop } = watch();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(firedAt).toEqual([]);
    const deadline = Date.now() + 2_000;
    announceDrain(deadline, path);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(firedAt).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(firedAt).toHaveLength(1);
    expect(firedAt[0]! - deadline).toBeLessThanOrEqual(POLL_MS);
    stop();
  });

  it('never fires after stop (the call ended first), even once the deadline passes', async () => {
    const { firedAt, stop } = watch();
    announceDrain(Date.now() + 1_000, path);
    await vi.advanceTimersByTimeAsync(500);
    stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(firedAt).toEqual([]);
  });

  it('does not fire for a drain cleared before its deadline, nor for an unreadable file', async () => {
    const { firedAt, stop } = watch();
    announceDrain(Date.now() + 1_000, path);
    clearDrain(path);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(firedAt).toEqual([]);
    writeFileSync(path, '{not json');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(firedAt).toEqual([]);
    writeFileSync(path, '{"deadline": "soon"}');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(firedAt).toEqual([]);
    stop();
  });
});
