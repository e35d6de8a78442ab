import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { markFirstSpeech, startMarksTo, type StartMark } from '../../agent/process/start-marks.ts';

/** bench:job-start reads these lines; a job process without AGENT_START_MARKS writes nothing. */
describe("a job process's start marks", () => {
  it('are off unless the bench asks: no file is written, no listener is added to the session', () => {
    const session = new EventEmitter();
    markFirstSpeech(session as never, 'first-speech', undefined);
    expect(session.eventNames()).toEqual([]);
    expect(() => startMarksTo(undefined)('modules-loaded')).not.toThrow();
    expect(() => startMarksTo('')('modules-loaded')).not.toThrow();
  });

  it("mark the agent's first speech once, then stop listening", () => {
    const session = new EventEmitter();
    const marked: string[] = [];
    markFirstSpeech(session as never, 'first-speech', (phase) => marked.push(phase));
    session.emit('agent_state_changed', { oldState: 'initializing', newState: 'listening' });
    expect(marked).toEqual([]);
    session.emit('agent_state_changed', { oldState: 'listening', newState: 'speaking' });
    session.emit('agent_state_changed', { oldState: 'listening', newState: 'speaking' });
    expect(marked).toEqual(['first-speech']);
    expect(session.listenerCount('agent_state_changed')).toBe(0);
  });

  it('append one line per phase: this process, since its start, CPU never running backwards', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'lkvc-start-marks-')), 'marks.jsonl');
    const mark = startMarksTo(file);
    mark('prewarm-start');
    let spin = 0;
    for (let i = 0; i < 1e6; i++) spin += i; // some CPU between the two marks
    mark('prewarm-end');
    const marks = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as StartMark);
    expect(spin).toBeGreaterThan(0);
    expect(marks.map((m) => [m.pid, m.phase])).toEqual([
      [process.pid, 'prewarm-start'],
      [process.pid, 'prewarm-end'],
    ]);
    const [a, b] = marks as [StartMark, StartMark];
    // Counted from the process's start, as the bench's phases are: the test runner has run a while.
    expect(a.wallMs).toBeGreaterThan(0);
    expect(a.cpuMs).toBeGreaterThan(0);
    expect(b.cpuMs).toBeGreaterThanOrEqual(a.cpuMs);
    expect(b.wallMs).toBeGreaterThanOrEqual(a.wallMs);
    expect(Math.abs(a.at - (performance.timeOrigin + a.wallMs))).toBeLessThan(1);
  });
});
