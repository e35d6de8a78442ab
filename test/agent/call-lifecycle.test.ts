import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  CallLifecycle,
  MAX_HOOKS,
  type EndSteps,
  type LifecycleOptions,
} from '../../agent/call/lifecycle.ts';
import type { HookOutcome } from '../../wire-contract/index.ts';

type Logged = { level: string; msg: string; fields?: Record<string, unknown> };

function setup(overrides: Partial<LifecycleOptions> = {}) {
  const trace: string[] = [];
  const logs: Logged[] = [];
  let reported: HookOutcome[] | undefined;
  const lifecycle = new CallLifecycle({
    room: 'r1',
    jobId: 'AJ_1',
    cleanupBudgetMs: 10_000,
    reportReserveMs: 2_000,
    stepTimeoutMs: 1_000,
    defaultHookTimeoutMs: 3_000,
    log: (level, msg, fields) => logs.push({ level, msg, fields }),
    ...overrides,
  });
  const steps: EndSteps = {
    announce: async (reason) => void trace.push(`announce:${reason}`),
    sayGoodbye: async (reason) => void trace.push(`goodbye:${reason}`),
    interruptSpeech: () => void trace.push('interrupt'),
    finish: async (reason) => void trace.push(`finish:${reason}`),
    report: async (summary, hooks) => {
      trace.push(`report:${summary.reason}`);
      reported = hooks;
    },
  };
  return { lifecycle, steps, trace, logs, reported: () => reported };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('CallLifecycle', () => {
  it('keeps the first reason: later triggers join the same end', async () => {
    const { lifecycle, steps, trace } = setup();
    lifecycle.attach(steps);
    const first = lifecycle.end('participant_left');
    const second = lifecycle.end('max_duration');
    expect(second).toBe(first);
    await vi.runAllTimersAsync();
    expect((await first).reason).toBe('participant_left');
    expect(trace.filter((t) => t.startsWith('finish'))).toEqual(['finish:participant_left']);
  });

  it('runs the steps in order: announce, goodbye, finish, hooks in registration order, report last', async () => {
    const { lifecycle, steps, trace } = setup();
    lifecycle.onCallEnd('first', () => void trace.push('hook:first'));
    lifecycle.onCallEnd('second', async () => void trace.push('hook:second'));
    lifecycle.attach(steps);
    const done = lifecycle.end('idle_timeout');
    await vi.runAllTimersAsync();
    await done;
    expect(trace).toEqual([
      'announce:idle_timeout',
      'goodbye:idle_timeout',
      'finish:idle_timeout',
      'hook:first',
      'hook:second',
      'report:idle_timeout',
    ]);
  });

  it('says no goodbye when the user hung up', async () => {
    const { lifecycle, steps, trace } = setup();
    lifecycle.attach(steps);
    const done = lifecycle.end('participant_left');
    await vi.runAllTimersAsync();
    await done;
    expect(trace).not.toContain('goodbye:participant_left');
  });

  it('waits for a goodbye already being spoken instead of saying another', async () => {
    const { lifecycle, steps, trace } = setup();
    lifecycle.attach(steps);
    let played!: () => void;
    const speech = new Promise<void>((r) => (played = r));
    const done = lifecycle.end('agent_end_call', {
      afterSpeech: speech.then(() => void trace.push('goodbye played')),
    });
    await vi.advanceTimersByTimeAsync(200);
    expect(trace).toEqual(['announce:agent_end_call']);
    played();
    await vi.runAllTimersAsync();
    await done;
    expect(trace).toEqual([
      'announce:agent_end_call',
      'goodbye played',
      'finish:agent_end_call',
      'report:agent_end_call',
    ]);
  });

  it('bounds a goodbye that never plays out (a hung TTS) by the step timeout', async () => {
    const { lifecycle, steps, trace, logs } = setup({ stepTimeoutMs: 1_500 });
    lifecycle.attach({ ...steps, sayGoodbye: () => new Promise(() => {}) });
    const done = lifecycle.end('max_duration');
    await vi.advanceTimersByTimeAsync(1_499);
    expect(trace).not.toContain('finish:max_duration');
    await vi.advanceTimersByTimeAsync(1);
    await vi.runAllTimersAsync();
    await done;
    expect(trace).toContain('finish:max_duration');
    expect(
      logs.some(
        (l) => l.msg === 'end step goodbye did not complete' && l.fields?.status === 'timeout',
      ),
    ).toBe(true);
  });

  it('tells every hook the reason and a summary; a throwing and a hanging hook skip none of the others', async () => {
    const { lifecycle, steps, reported } = setup();
    const told: unknown[] = [];
    lifecycle.onCallEnd('hangs', () => new Promise(() => {}), { timeoutMs: 1_000 });
    lifecycle.onCallEnd('throws', () => {
      throw new Error('boom');
    });
    lifecycle.onCallEnd('records', (s) => void told.push(s));
    lifecycle.attach(steps);
    const done = lifecycle.end('api_end_call');
    await vi.runAllTimersAsync();
    const summary = await done;
    expect(told).toEqual([summary]);
    expect(summary).toMatchObject({ reason: 'api_end_call', room: 'r1', jobId: 'AJ_1' });
    expect(reported()!.map((h) => [h.name, h.status, h.error])).toEqual([
      ['hangs', 'timeout', 'exceeded 1000 ms'],
      ['throws', 'error', 'boom'],
      ['records', 'ok', undefined],
    ]);
  });

  it('starts concurrent hooks together and still waits for them', async () => {
    const { lifecycle, steps, trace } = setup();
    lifecycle.onCallEnd(
      'slow-sequential',
      () => new Promise<void>((r) => setTimeout(() => r(void trace.push('seq done')), 500)),
    );
    lifecycle.onCallEnd(
      'concurrent',
      () => {
        trace.push('concurrent started');
        return new Promise<void>((r) =>
          setTimeout(() => r(void trace.push('concurrent done')), 800),
        );
      },
      { concurrent: true },
    );
    lifecycle.attach(steps);
    const done = lifecycle.end('drain');
    await vi.runAllTimersAsync();
    await done;
    expect(trace.indexOf('concurrent started')).toBeLessThan(trace.indexOf('seq done'));
    expect(trace.indexOf('concurrent done')).toBeLessThan(trace.indexOf('report:drain'));
  });

  it('cuts every hook to the cleanup budget, and still calls hooks after the budget is spent', async () => {
    const { lifecycle, steps, reported } = setup({ cleanupBudgetMs: 2_000, reportReserveMs: 500 });
    const started: string[] = [];
    lifecycle.onCallEnd('hog', () => new Promise(() => void started.push('hog')), {
      timeoutMs: 60_000,
    });
    lifecycle.onCallEnd('late', () => void started.push('late'));
    lifecycle.attach(steps);
    const t0 = Date.now();
    const done = lifecycle.end('error');
    await vi.runAllTimersAsync();
    await done;
    expect(started).toEqual(['hog', 'late']);
    const hooks = reported()!;
    expect(hooks[0]).toMatchObject({ name: 'hog', status: 'timeout' });
    expect(hooks[0]!.duration_ms).toBe(1_500);
    expect(hooks[1]).toMatchObject({ name: 'late', status: 'ok' });
    expect(Date.now() - t0).toBeLessThanOrEqual(2_000 + 100);
  });

  it('bounds the report by what is left of the budget and logs a failed delivery', async () => {
    const { lifecycle, steps, logs } = setup({ cleanupBudgetMs: 1_000, reportReserveMs: 1_000 });
    lifecycle.attach({ ...steps, report: () => new Promise(() => {}) });
    const done = lifecycle.end('participant_left');
    await vi.runAllTimersAsync();
    await done;
    expect(logs.find((l) => l.msg === 'report not delivered')?.fields).toMatchObject({
      name: 'report',
      status: 'timeout',
    });
    expect(logs.at(-1)).toMatchObject({ level: 'info', msg: 'call ended' });
  });

  it('runs hooks even when the call ends before the session was attached', async () => {
    const { lifecycle } = setup();
    const ran: string[] = [];
    lifecycle.onCallEnd('early', (s) => void ran.push(s.reason));
    const done = lifecycle.end('error');
    await vi.runAllTimersAsync();
    await done;
    expect(ran).toEqual(['error']);
  });

  it('refuses a hook registered while the call is ending, names it in the report, and still finishes', async () => {
    const { lifecycle, steps, reported } = setup();
    lifecycle.onCallEnd('registers-late', () => {
      expect(lifecycle.onCallEnd('too-late', () => {})).toBe(false);
    });
    lifecycle.attach(steps);
    void lifecycle.end('participant_left');
    await vi.runAllTimersAsync();
    await expect(lifecycle.finished).resolves.toMatchObject({ reason: 'participant_left' });
    expect(reported()!.map((h) => [h.name, h.status])).toEqual([
      ['registers-late', 'ok'],
      ['too-late', 'skipped'],
    ]);
    expect(reported()![1]!.error).toMatch(/after the call began ending/);
  });

  it(`refuses hooks past ${MAX_HOOKS} and names each refusal in the report`, async () => {
    const { lifecycle, steps, reported } = setup();
    for (let i = 0; i < MAX_HOOKS + 2; i++) lifecycle.onCallEnd(`hook-${i}`, () => {});
    lifecycle.attach(steps);
    void lifecycle.end('error');
    await vi.runAllTimersAsync();
    await lifecycle.finished;
    const hooks = reported()!;
    expect(hooks.filter((h) => h.status === 'ok')).toHaveLength(MAX_HOOKS);
    expect(hooks.filter((h) => h.status === 'skipped').map((h) => h.name)).toEqual([
      `hook-${MAX_HOOKS}`,
      `hook-${MAX_HOOKS + 1}`,
    ]);
  });

  it('aborts a hook’s signal at its timeout, so a hook that honours it stops before the next starts', async () => {
    const { lifecycle, steps, trace } = setup();
    lifecycle.onCallEnd(
      'slow-but-polite',
      (_s, signal) =>
        new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => {
            trace.push(`aborted:${(signal.reason as Error).name}`);
            resolve();
          }),
        ),
      { timeoutMs: 500 },
    );
    lifecycle.onCallEnd('next', () => void trace.push('hook:next'));
    lifecycle.attach(steps);
    void lifecycle.end('error');
    await vi.runAllTimersAsync();
    await lifecycle.finished;
    expect(trace.indexOf('aborted:TimeoutError')).toBeLessThan(trace.indexOf('hook:next'));
  });

  it('cuts a goodbye short when the caller hangs up during it, then finishes at once', async () => {
    const { lifecycle, steps, trace } = setup({ stepTimeoutMs: 60_000 });
    lifecycle.attach({
      ...steps,
      sayGoodbye: () => new Promise(() => void trace.push('goodbye:started')),
    });
    void lifecycle.end('max_duration');
    await vi.advanceTimersByTimeAsync(10);
    expect(trace).toContain('goodbye:started');
    void lifecycle.end('participant_left');
    await vi.advanceTimersByTimeAsync(10);
    expect(trace).toContain('interrupt');
    expect(trace).toContain('finish:max_duration');
    await vi.runAllTimersAsync();
    await expect(lifecycle.finished).resolves.toMatchObject({ reason: 'max_duration' });
  });

  it('lets a later trigger that still has listeners (the agent leaving) keep the goodbye', async () => {
    const { lifecycle, steps, trace } = setup();
    lifecycle.attach(steps);
    void lifecycle.end('idle_timeout');
    void lifecycle.end('agent_leave');
    await vi.runAllTimersAsync();
    await lifecycle.finished;
    expect(trace).toContain('goodbye:idle_timeout');
    expect(trace).not.toContain('interrupt');
  });

  it('logs no "goodbye cut" for a goodbye that already played in full (the room deleted after it)', async () => {
    const { lifecycle, steps, logs } = setup();
    lifecycle.attach(steps);
    void lifecycle.end('agent_end_call');
    await vi.runAllTimersAsync();
    await lifecycle.finished;
    // The agent's own delete comes back as the room's disconnect and the caller's ROOM_DELETED leave.
    void lifecycle.end('room_deleted');
    void lifecycle.end('participant_left');
    expect(logs.filter((l) => l.msg.startsWith('goodbye cut'))).toEqual([]);
  });

  it('logs no "goodbye cut" when the goodbye is over and the room is being deleted', async () => {
    const { lifecycle, steps, logs } = setup();
    let finishing!: () => void;
    lifecycle.attach({ ...steps, finish: () => new Promise<void>((r) => (finishing = r)) });
    void lifecycle.end('max_duration');
    await vi.advanceTimersByTimeAsync(10);
    void lifecycle.end('room_deleted');
    finishing();
    await vi.runAllTimersAsync();
    expect(logs.filter((l) => l.msg.startsWith('goodbye cut'))).toEqual([]);
  });

  describe('with a deadline (the process is about to go: the worker is lost, or the job crashed)', () => {
    it('skips the goodbye and fits hooks and report before the deadline, whatever their own limits', async () => {
      const { lifecycle, steps, trace } = setup({
        cleanupBudgetMs: 20_000,
        reportReserveMs: 10_000,
        stepTimeoutMs: 8_000,
        defaultHookTimeoutMs: 10_000,
      });
      const reportedAt: number[] = [];
      lifecycle.onCallEnd('slow', () => new Promise(() => void trace.push('hook:slow')));
      lifecycle.attach({
        ...steps,
        finish: () => new Promise(() => void trace.push('finish:hangs')),
        report: async (summary, hooks, deadline) => {
          reportedAt.push(Date.now(), deadline);
          trace.push(`report:${summary.reason}:${hooks.map((h) => h.status).join(',')}`);
        },
      });
      const start = Date.now();
      void lifecycle.end('drain', { deadline: start + 12_000 });
      await vi.runAllTimersAsync();
      await lifecycle.finished;
      expect(trace).not.toContain('goodbye:drain');
      expect(trace).toContain('hook:slow');
      expect(trace).toContain('report:drain:timeout');
      expect(reportedAt[0]! - start).toBeLessThan(12_000);
      expect(reportedAt[1]!).toBeLessThanOrEqual(start + 12_000);
    });

    it(`${MAX_HOOKS} hanging hooks: those reached once the hooks' time is spent start together, each called with the reason, and the report still comes before the deadline`, async () => {
      const { lifecycle, steps, logs } = setup({
        cleanupBudgetMs: 20_000,
        reportReserveMs: 10_000,
        defaultHookTimeoutMs: 60_000,
      });
      const told: string[] = [];
      for (let i = 0; i < MAX_HOOKS; i++)
        lifecycle.onCallEnd(`hook-${i}`, (s) => new Promise(() => void told.push(s.reason)));
      const reported: { at: number; hooks: HookOutcome[] }[] = [];
      lifecycle.attach({
        ...steps,
        report: async (_s, hooks) => void reported.push({ at: Date.now(), hooks }),
      });
      // A stalled worker: about 6 s before this process is gone.
      const gone = Date.now() + 6_000;
      void lifecycle.end('drain', { deadline: gone });
      await vi.runAllTimersAsync();
      await lifecycle.finished;
      expect(told).toEqual(Array(MAX_HOOKS).fill('drain')); // none skipped
      expect(reported).toHaveLength(1);
      expect(reported[0]!.at, 'the report, before the process is gone').toBeLessThan(gone);
      expect(reported[0]!.hooks.map((h) => h.status)).toEqual(Array(MAX_HOOKS).fill('timeout'));
      expect(logs.find((l) => /start together/.test(l.msg))?.fields).toMatchObject({
        hooks: MAX_HOOKS - 1,
      });
    });

    it('joined while a goodbye plays: cuts it, quietly, and the rest fits before the deadline', async () => {
      const { lifecycle, steps, trace, logs } = setup({ stepTimeoutMs: 8_000 });
      let reportedAt = 0;
      lifecycle.attach({
        ...steps,
        sayGoodbye: () => new Promise(() => void trace.push('goodbye:started')),
        report: async () => void (reportedAt = Date.now()),
      });
      const start = Date.now();
      void lifecycle.end('max_duration');
      await vi.advanceTimersByTimeAsync(10);
      expect(trace).toContain('goodbye:started');
      void lifecycle.end('drain', { deadline: start + 3_000 });
      await vi.runAllTimersAsync();
      await expect(lifecycle.finished).resolves.toMatchObject({ reason: 'max_duration' });
      expect(trace).toContain('interrupt');
      expect(reportedAt - start).toBeLessThan(3_000);
      expect(logs.filter((l) => l.level !== 'info')).toEqual([]);
    });

    it('a deadline that arrives while the hooks run cuts the running hook, and the hooks left and the report fit before it', async () => {
      const { lifecycle, steps, trace } = setup({
        cleanupBudgetMs: 20_000,
        reportReserveMs: 5_000,
        defaultHookTimeoutMs: 10_000,
      });
      const reported: { at: number; deadline: number; hooks: string[] }[] = [];
      lifecycle.onCallEnd('slow', () => new Promise(() => void trace.push('hook:slow')));
      lifecycle.onCallEnd('next', () => new Promise(() => void trace.push('hook:next')));
      lifecycle.attach({
        ...steps,
        report: async (_s, hooks, deadline) =>
          void reported.push({ at: Date.now(), deadline, hooks: hooks.map((h) => h.status) }),
      });
      void lifecycle.end('participant_left');
      await vi.advanceTimersByTimeAsync(1_000);
      expect(trace).toContain('hook:slow');
      // The worker is lost now: this process is gone 4 s from here, whatever runs.
      const gone = Date.now() + 4_000;
      void lifecycle.end('drain', { deadline: gone });
      let finishedAt = Infinity;
      void lifecycle.finished.then(() => (finishedAt = Date.now()));
      await vi.runAllTimersAsync();
      await expect(lifecycle.finished).resolves.toMatchObject({ reason: 'participant_left' });
      expect(trace).toContain('hook:next'); // still called, however little time is left
      expect(reported).toHaveLength(1);
      expect(reported[0]!.hooks).toEqual(['timeout', 'timeout']);
      expect(reported[0]!.at).toBeLessThan(gone);
      expect(reported[0]!.deadline).toBeLessThanOrEqual(gone);
      expect(finishedAt).toBeLessThanOrEqual(gone);
    });

    it('a deadline that arrives while the report is being delivered cuts the report to it', async () => {
      const { lifecycle, steps } = setup({ cleanupBudgetMs: 20_000, reportReserveMs: 10_000 });
      let delivering = false;
      lifecycle.attach({
        ...steps,
        report: () => new Promise(() => void (delivering = true)),
      });
      void lifecycle.end('api_end_call');
      let finishedAt = Infinity;
      void lifecycle.finished.then(() => (finishedAt = Date.now()));
      await vi.advanceTimersByTimeAsync(1_000);
      expect(delivering).toBe(true);
      const gone = Date.now() + 2_000;
      void lifecycle.end('error', { deadline: gone });
      await vi.runAllTimersAsync();
      await lifecycle.finished;
      expect(finishedAt).toBeLessThanOrEqual(gone);
    });
  });
});
