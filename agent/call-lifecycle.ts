import { END_REASONS, type EndReason, type HookOutcome } from '../wire-contract/index.ts';

/** What every end-of-call hook is told. */
export type CallSummary = {
  reason: EndReason;
  room: string;
  jobId: string;
  startedAt: Date;
  endedAt: Date;
};

export type CallEndHook = (summary: CallSummary) => unknown;
export type HookOptions = {
  /** This hook's own limit; it is also cut by what is left of the cleanup budget. */
  timeoutMs?: number;
  /** Start together with the sequential chain instead of waiting for the hooks before it. */
  concurrent?: boolean;
};

/** The steps of an end the lifecycle does not own itself: speaking, leaving, reporting. */
export type EndSteps = {
  /** Tell clients why (attribute, data message). Best effort. */
  announce(reason: EndReason): Promise<void>;
  /** Speak the goodbye for this reason and resolve when it has played out. */
  sayGoodbye(reason: EndReason): Promise<void>;
  /** Leave the room or delete it, as the reason and the call's mode say. */
  finish(reason: EndReason): Promise<void>;
  /** Deliver the end-of-call report; gets the hooks' outcomes. Runs last, until `deadline` (epoch ms). */
  report(summary: CallSummary, hooks: HookOutcome[], deadline: number): Promise<void>;
};

export type LifecycleOptions = {
  room: string;
  jobId: string;
  startedAt?: Date;
  /** Bounds steps 3 and 4 together (hooks, then the report). */
  cleanupBudgetMs: number;
  /** Share of the budget kept for the report after the hooks. */
  reportReserveMs: number;
  /** Bounds each of announce, goodbye and finish. */
  stepTimeoutMs: number;
  defaultHookTimeoutMs: number;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  now?: () => number;
};

/** Below this a hook is still called (told the reason) but given only this long. */
const MIN_HOOK_SLICE_MS = 100;

type Registered = { name: string; fn: CallEndHook; timeoutMs: number; concurrent: boolean };

/**
 * Owns how one call ends. The first reason wins; later triggers join the same end. The steps run
 * in a fixed order, each bounded: announce, goodbye (if the reason calls for one and it was not
 * already spoken), finish (leave or delete the room), hooks in registration order (or concurrent
 * where declared, each with its own timeout, none skipped), then the report.
 */
export class CallLifecycle {
  readonly #opts: LifecycleOptions;
  readonly #hooks: Registered[] = [];
  readonly #startedAt: Date;
  #steps: EndSteps | undefined;
  #reason: EndReason | undefined;
  #done: Promise<CallSummary> | undefined;
  #resolveFinished!: (summary: CallSummary) => void;
  /** Resolves with the summary once the call has ended and every step has run (or been cut). */
  readonly finished = new Promise<CallSummary>((resolve) => (this.#resolveFinished = resolve));
  #onEnding: ((reason: EndReason) => void)[] = [];

  constructor(opts: LifecycleOptions) {
    this.#opts = opts;
    this.#startedAt = opts.startedAt ?? new Date(this.#now());
  }

  /** Register before anything that can fail, so an early failure still runs the hook. */
  onCallEnd(name: string, fn: CallEndHook, options: HookOptions = {}): void {
    if (this.#done)
      this.#opts.log('warn', 'hook registered after the call began ending; it will not run', {
        hook: name,
      });
    this.#hooks.push({
      name,
      fn,
      timeoutMs: options.timeoutMs ?? this.#opts.defaultHookTimeoutMs,
      concurrent: options.concurrent ?? false,
    });
  }

  /** Set once the session exists; until then an end skips speaking and leaving. */
  attach(steps: EndSteps): void {
    this.#steps = steps;
  }

  get reason(): EndReason | undefined {
    return this.#reason;
  }

  get ending(): boolean {
    return this.#done !== undefined;
  }

  /** Called synchronously when the end begins (timers stop, inputs close). */
  onEnding(fn: (reason: EndReason) => void): void {
    this.#onEnding.push(fn);
  }

  /**
   * Ends the call for `reason`, or joins the end already under way. `afterSpeech` is a goodbye the
   * model is already speaking (the end_call tool): wait for it, bounded, instead of a new one.
   */
  end(reason: EndReason, opts: { afterSpeech?: Promise<unknown> } = {}): Promise<CallSummary> {
    if (this.#done) return this.#done;
    this.#reason = reason;
    this.#opts.log('info', 'call ending', { reason });
    // Set before the listeners run so they can await it; the steps start after them.
    this.#done = Promise.resolve().then(() => this.#run(reason, opts.afterSpeech));
    void this.#done.then(this.#resolveFinished);
    for (const fn of this.#onEnding) {
      try {
        fn(reason);
      } catch (err) {
        this.#opts.log('warn', 'onEnding listener threw', { error: message(err) });
      }
    }
    return this.#done;
  }

  async #run(reason: EndReason, afterSpeech?: Promise<unknown>): Promise<CallSummary> {
    const steps = this.#steps;
    if (steps) {
      await this.#step('announce', () => steps.announce(reason));
      if (afterSpeech) await this.#step('goodbye', () => afterSpeech);
      else if (END_REASONS[reason].goodbye !== null)
        await this.#step('goodbye', () => steps.sayGoodbye(reason));
      await this.#step('finish', () => steps.finish(reason));
    }
    const summary: CallSummary = {
      reason,
      room: this.#opts.room,
      jobId: this.#opts.jobId,
      startedAt: this.#startedAt,
      endedAt: new Date(this.#now()),
    };
    const cleanupStart = this.#now();
    const hooksDeadline =
      cleanupStart + Math.max(0, this.#opts.cleanupBudgetMs - this.#opts.reportReserveMs);
    const outcomes = await this.#runHooks(summary, hooksDeadline);
    if (steps) {
      const left = Math.max(
        cleanupStart + this.#opts.cleanupBudgetMs - this.#now(),
        MIN_HOOK_SLICE_MS,
      );
      const outcome = await this.#runBounded(
        'report',
        () => steps.report(summary, outcomes, this.#now() + left),
        left,
      );
      if (outcome.status !== 'ok') this.#opts.log('error', 'report not delivered', { ...outcome });
    }
    this.#opts.log('info', 'call ended', {
      reason,
      duration_ms: summary.endedAt.getTime() - summary.startedAt.getTime(),
      cleanup_ms: this.#now() - cleanupStart,
      hooks: outcomes,
    });
    return summary;
  }

  async #runHooks(summary: CallSummary, deadline: number): Promise<HookOutcome[]> {
    const outcomes = new Map<Registered, HookOutcome>();
    const slice = (hook: Registered) =>
      Math.max(Math.min(hook.timeoutMs, deadline - this.#now()), MIN_HOOK_SLICE_MS);
    const concurrent = this.#hooks
      .filter((h) => h.concurrent)
      .map(async (h) =>
        outcomes.set(h, await this.#runBounded(h.name, () => h.fn(summary), slice(h))),
      );
    for (const hook of this.#hooks.filter((h) => !h.concurrent))
      outcomes.set(hook, await this.#runBounded(hook.name, () => hook.fn(summary), slice(hook)));
    await Promise.all(concurrent);
    const list = this.#hooks.map((h) => outcomes.get(h)!);
    for (const o of list)
      if (o.status !== 'ok') this.#opts.log('warn', 'end-of-call hook failed', { ...o });
    return list;
  }

  async #step(name: string, fn: () => Promise<unknown>): Promise<void> {
    const outcome = await this.#runBounded(name, fn, this.#opts.stepTimeoutMs);
    if (outcome.status !== 'ok')
      this.#opts.log('warn', `end step ${name} did not complete`, { ...outcome });
  }

  async #runBounded(name: string, fn: () => unknown, timeoutMs: number): Promise<HookOutcome> {
    const started = this.#now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const result = await Promise.race([
        Promise.resolve()
          .then(fn)
          .then(() => 'ok' as const),
        timeout,
      ]);
      return result === 'ok'
        ? { name, status: 'ok', duration_ms: this.#now() - started }
        : {
            name,
            status: 'timeout',
            duration_ms: this.#now() - started,
            error: `exceeded ${Math.round(timeoutMs)} ms`,
          };
    } catch (err) {
      return {
        name,
        status: 'error',
        duration_ms: this.#now() - started,
        error: message(err).slice(0, 2000),
      };
    } finally {
      clearTimeout(timer);
    }
  }

  #now(): number {
    return (this.#opts.now ?? Date.now)();
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
