import {
  END_REASONS,
  type EndReason,
  type HookOutcome,
  errorMessage,
} from '../../wire-contract/index.ts';
import type { LogFn } from '../log.ts';

/** What every end-of-call hook is told. */
export type CallSummary = {
  reason: EndReason;
  room: string;
  jobId: string;
  startedAt: Date;
  endedAt: Date;
};

/**
 * An end-of-call hook. `signal` aborts when the hook's time is up: a hook that honours it stops
 * its work, so hooks that run in order really do stay in order.
 */
export type CallEndHook = (summary: CallSummary, signal: AbortSignal) => unknown;
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
  /** Stop any speech now: nobody is left to hear the goodbye. */
  interruptSpeech(): void;
  /** Leave the room or delete it, as the reason and the call's mode say. */
  finish(reason: EndReason): Promise<void>;
  /**
   * Deliver the end-of-call report; gets the hooks' outcomes. Runs last, until `deadline` (epoch
   * ms); `signal` aborts when its time is up, also earlier than `deadline` when a process deadline
   * arrives meanwhile: then delivery stops and what is undelivered is handed on at once.
   */
  report(
    summary: CallSummary,
    hooks: HookOutcome[],
    deadline: number,
    signal?: AbortSignal,
  ): Promise<void>;
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
  log: LogFn;
  now?: () => number;
};

/**
 * Below this a hook is still called (told the reason) but given only this long; hooks reached
 * once the hooks' time is spent share one such slice, started together.
 */
const MIN_HOOK_SLICE_MS = 100;
/** More hooks than this are refused at registration (and named in the report), never run. */
export const MAX_HOOKS = 64;
const MAX_HOOK_NAME = 200;

type Registered = { name: string; fn: CallEndHook; timeoutMs: number; concurrent: boolean };

/**
 * Owns how one call ends. The first reason wins; later triggers join the same end, and one that
 * means nobody is listening any more (a hang-up, the room deleted) cuts a goodbye short. The steps
 * run in a fixed order, each bounded: announce, goodbye (if the reason calls for one and it was
 * not already spoken), finish (leave or delete the room), hooks in registration order (or
 * concurrent where declared, each with its own timeout and abort signal, none skipped; those
 * reached after the hooks' time is spent start together), then the report. `finished` always
 * resolves, whatever a step or hook does.
 */
export class CallLifecycle {
  readonly #opts: LifecycleOptions;
  readonly #hooks: Registered[] = [];
  /** Registrations refused (too late or too many): reported, never run. */
  readonly #refused: HookOutcome[] = [];
  readonly #startedAt: Date;
  readonly #speechCut = new AbortController();
  /** Where the end is: a goodbye can only be cut while it has not played out. */
  #phase: 'before_goodbye' | 'goodbye' | 'after_goodbye' = 'before_goodbye';
  /** When the process goes away (epoch ms): every step still to run fits before it. */
  #deadline = Infinity;
  /** Called when a deadline arrives or comes closer: every bound running re-fits to it. */
  readonly #deadlineMoved = new Set<() => void>();
  /** When the cleanup (hooks, then report) began; until then, undefined. */
  #cleanupStart: number | undefined;
  /** When the hooks must be done, leaving the report its share; only ever moves earlier. */
  #hooksUntil = Infinity;
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

  /**
   * Register before anything that can fail, so an early failure still runs the hook. Refused
   * (returns false, and the report names it) once the call is ending or past MAX_HOOKS.
   */
  onCallEnd(name: string, fn: CallEndHook, options: HookOptions = {}): boolean {
    const shortName = name.slice(0, MAX_HOOK_NAME);
    const refusal = this.#done
      ? 'registered after the call began ending'
      : this.#hooks.length >= MAX_HOOKS
        ? `more than ${MAX_HOOKS} hooks registered`
        : undefined;
    if (refusal) {
      this.#opts.log('warn', `hook refused: ${refusal}`, { hook: shortName });
      this.#refused.push({ name: shortName, status: 'skipped', duration_ms: 0, error: refusal });
      return false;
    }
    this.#hooks.push({
      name: shortName,
      fn,
      timeoutMs: options.timeoutMs ?? this.#opts.defaultHookTimeoutMs,
      concurrent: options.concurrent ?? false,
    });
    return true;
  }

  /** Set as soon as the call's context exists; until then an end skips speaking and leaving. */
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
   * `deadline` (epoch ms) is when this process will be gone whatever runs (its worker is lost, it
   * crashed): no goodbye then, not even one already playing, and the steps left are cut to fit
   * before it, the report last, so that hooks and report still happen.
   */
  end(
    reason: EndReason,
    opts: { afterSpeech?: Promise<unknown>; deadline?: number } = {},
  ): Promise<CallSummary> {
    if (opts.deadline !== undefined) {
      // A deadline can arrive at any point of the end (the worker lost while a hook runs): what
      // runs now and what is still to run are re-fitted to it, not only the steps yet to start.
      if (opts.deadline < this.#deadline) {
        this.#deadline = opts.deadline;
        this.#fitHooks();
        for (const moved of [...this.#deadlineMoved]) moved();
      }
      this.#cutGoodbye();
    }
    if (this.#done) {
      if (END_REASONS[reason].goodbye === null) this.#cutGoodbye(reason);
      return this.#done;
    }
    this.#reason = reason;
    this.#opts.log('info', 'call ending', { reason });
    // Set before the listeners run so they can await it; the steps start after them.
    this.#done = Promise.resolve().then(() => this.#run(reason, opts.afterSpeech));
    this.#done.then(this.#resolveFinished, (err: unknown) => {
      this.#opts.log('error', 'call end failed; finishing anyway', { error: errorMessage(err) });
      this.#resolveFinished(this.#summary(reason));
    });
    for (const fn of this.#onEnding) {
      try {
        fn(reason);
      } catch (err) {
        this.#opts.log('warn', 'onEnding listener threw', { error: errorMessage(err) });
      }
    }
    return this.#done;
  }

  /**
   * A goodbye not yet played out stops: nobody can hear it (`trigger`: a hang-up, the room gone),
   * or there is no time for it. One that already played is left alone, and nothing is logged.
   */
  #cutGoodbye(trigger?: EndReason): void {
    if (this.#phase === 'after_goodbye' || this.#speechCut.signal.aborted) return;
    if (trigger && this.#phase === 'goodbye')
      this.#opts.log('info', 'goodbye cut: nobody is left to hear it', { trigger });
    this.#speechCut.abort();
  }

  async #run(reason: EndReason, afterSpeech?: Promise<unknown>): Promise<CallSummary> {
    const steps = this.#steps;
    if (steps) {
      await this.#step('announce', () => steps.announce(reason));
      const goodbye = afterSpeech
        ? () => afterSpeech
        : END_REASONS[reason].goodbye !== null
          ? () => steps.sayGoodbye(reason)
          : undefined;
      this.#phase = 'goodbye';
      if (goodbye && !this.#speechCut.signal.aborted)
        await this.#step('goodbye', () => this.#unlessCut(goodbye, steps));
      this.#phase = 'after_goodbye';
      await this.#step('finish', () => steps.finish(reason));
    }
    const summary = this.#summary(reason);
    const cleanupStart = this.#now();
    this.#cleanupStart = cleanupStart;
    this.#fitHooks();
    const outcomes = [...(await this.#runHooks(summary)), ...this.#refused];
    if (steps) {
      const started = this.#now();
      const until = () => Math.max(this.#cleanupEnd(), started + MIN_HOOK_SLICE_MS);
      const outcome = await this.#runBounded(
        'report',
        (signal) => steps.report(summary, outcomes, until(), signal),
        until,
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

  /** The goodbye, unless a later trigger says nobody can hear it: then speech stops at once. */
  #unlessCut(goodbye: () => Promise<unknown>, steps: EndSteps): Promise<unknown> {
    const cut = this.#speechCut.signal;
    if (cut.aborted) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onCut = () => {
        steps.interruptSpeech();
        resolve(undefined);
      };
      cut.addEventListener('abort', onCut, { once: true });
      goodbye()
        .then(resolve, reject)
        .finally(() => cut.removeEventListener('abort', onCut));
    });
  }

  #summary(reason: EndReason): CallSummary {
    return {
      reason,
      room: this.#opts.room,
      jobId: this.#opts.jobId,
      startedAt: this.#startedAt,
      endedAt: new Date(this.#now()),
    };
  }

  /** The cleanup's end: its budget from when it began, or the deadline if that comes first. */
  #cleanupEnd(): number {
    return Math.min(
      (this.#cleanupStart ?? this.#now()) + this.#opts.cleanupBudgetMs,
      this.#deadline,
    );
  }

  /**
   * Where the hooks must stop, so that the report keeps its share of what is left (at most half),
   * counted from now: at the cleanup's start, and again whenever a deadline arrives.
   */
  #fitHooks(): void {
    if (this.#cleanupStart === undefined) return;
    const now = this.#now();
    const end = this.#cleanupEnd();
    const reserve = Math.min(this.#opts.reportReserveMs, Math.max(0, end - now) / 2);
    this.#hooksUntil = Math.min(this.#hooksUntil, Math.max(now, end - reserve));
  }

  async #runHooks(summary: CallSummary): Promise<HookOutcome[]> {
    const hooks = [...this.#hooks];
    const outcomes = new Map<Registered, HookOutcome>();
    const run = async (h: Registered) => {
      const started = this.#now();
      const until = () =>
        Math.max(Math.min(started + h.timeoutMs, this.#hooksUntil), started + MIN_HOOK_SLICE_MS);
      outcomes.set(h, await this.#runBounded(h.name, (signal) => h.fn(summary, signal), until));
    };
    const running = hooks.filter((h) => h.concurrent).map(run);
    const sequential = hooks.filter((h) => !h.concurrent);
    for (const [i, hook] of sequential.entries()) {
      // The hooks' time is spent (hooks before hung, or a deadline came): one slice each in turn
      // would overrun it by the number of hooks left (64 × 100 ms under a 6 s deadline). Each is
      // still called and told the reason, so the rest start together and share one last slice;
      // there is no order left to keep once the hooks before them were cut.
      if (this.#now() >= this.#hooksUntil) {
        const rest = sequential.slice(i);
        this.#opts.log('warn', "hooks' time is spent: the hooks left start together", {
          hooks: rest.length,
          slice_ms: MIN_HOOK_SLICE_MS,
        });
        running.push(...rest.map(run));
        break;
      }
      await run(hook);
    }
    await Promise.all(running);
    const list = hooks.map((h) => outcomes.get(h)!);
    for (const o of list)
      if (o.status !== 'ok') this.#opts.log('warn', 'end-of-call hook failed', { ...o });
    return list;
  }

  /** Each step is bounded by its own timeout and, under a deadline, by a quarter of what is left. */
  async #step(name: string, fn: () => Promise<unknown>): Promise<void> {
    const started = this.#now();
    const until = () => {
      const now = this.#now();
      const quarter = now + (this.#deadline - now) / 4;
      return Math.max(
        Math.min(started + this.#opts.stepTimeoutMs, quarter),
        started + MIN_HOOK_SLICE_MS,
      );
    };
    const outcome = await this.#runBounded(name, fn, until);
    if (outcome.status !== 'ok')
      this.#opts.log('warn', `end step ${name} did not complete`, { ...outcome });
  }

  /**
   * Runs `fn` until it settles or `until()` (epoch ms) passes: then its signal aborts and the
   * outcome is a timeout. `until` is asked again whenever a deadline arrives, so a bound only
   * ever comes closer, also for what is already running.
   */
  async #runBounded(
    name: string,
    fn: (signal: AbortSignal) => unknown,
    until: () => number,
  ): Promise<HookOutcome> {
    const started = this.#now();
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let end = Infinity;
    let timeoutMs = 0;
    let timedOut!: (value: 'timeout') => void;
    const timeout = new Promise<'timeout'>((resolve) => (timedOut = resolve));
    const arm = () => {
      const next = until();
      if (next >= end) return;
      end = next;
      timeoutMs = end - started;
      clearTimeout(timer);
      timer = setTimeout(
        () => {
          abort.abort(
            new DOMException(`${name} exceeded ${Math.round(timeoutMs)} ms`, 'TimeoutError'),
          );
          timedOut('timeout');
        },
        Math.max(0, end - this.#now()),
      );
    };
    arm();
    this.#deadlineMoved.add(arm);
    try {
      const result = await Promise.race([
        Promise.resolve()
          .then(() => fn(abort.signal))
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
        error: errorMessage(err).slice(0, 2000),
      };
    } finally {
      clearTimeout(timer);
      this.#deadlineMoved.delete(arm);
    }
  }

  #now(): number {
    return (this.#opts.now ?? Date.now)();
  }
}
