/**
 * The call's clocks. Max duration: a spoken warning `warningSeconds` before the limit, then the end.
 * Idle ladder: after `promptSeconds` of user silence (while the agent is not speaking) a prompt;
 * `endSeconds` more of silence and the call ends. Any user activity resets the ladder.
 */
export type TimerActions = {
  warnMaxDuration(): void;
  endMaxDuration(): void;
  promptIdle(): void;
  endIdle(): void;
};

export type TimerSettings = {
  maxDurationSeconds: number;
  warningSeconds: number;
  promptSeconds: number;
  endSeconds: number;
};

export class CallTimers {
  readonly #timers = new Set<NodeJS.Timeout>();
  #idle: NodeJS.Timeout | undefined;
  #agentSpeaking = false;
  #stopped = false;
  /** Set when the prompt fired: the next silence is the last rung. */
  #promptedAt: number | undefined;

  readonly #settings: TimerSettings;
  readonly #actions: TimerActions;

  constructor(settings: TimerSettings, actions: TimerActions) {
    this.#settings = settings;
    this.#actions = actions;
  }

  start(): void {
    const { maxDurationSeconds, warningSeconds } = this.#settings;
    if (warningSeconds > 0 && warningSeconds < maxDurationSeconds)
      this.#after((maxDurationSeconds - warningSeconds) * 1000, () =>
        this.#actions.warnMaxDuration(),
      );
    this.#after(maxDurationSeconds * 1000, () => this.#actions.endMaxDuration());
    this.userActive();
  }

  /** The user spoke or typed: restart the idle ladder from the first rung. */
  userActive(): void {
    this.#armIdle('prompt');
  }

  /** While the agent speaks, silence is not the user's; the ladder restarts when it stops. */
  agentSpeaking(speaking: boolean): void {
    this.#agentSpeaking = speaking;
    if (speaking) this.#clearIdle();
    else this.#armIdle(this.#promptedAt === undefined ? 'prompt' : 'end');
  }

  #armIdle(rung: 'prompt' | 'end'): void {
    this.#clearIdle();
    if (this.#stopped || this.#agentSpeaking) return;
    if (rung === 'prompt') this.#promptedAt = undefined;
    const { promptSeconds, endSeconds } = this.#settings;
    if (rung === 'prompt' && promptSeconds <= 0) return;
    const ms = (rung === 'prompt' ? promptSeconds : endSeconds) * 1000;
    this.#idle = this.#after(ms, () => {
      if (rung === 'prompt') {
        this.#promptedAt = Date.now();
        this.#actions.promptIdle();
        // The prompt is speech: agentSpeaking(false) arms the last rung once it has played. If no
        // speech state arrives (text-only), arm it now.
        if (!this.#agentSpeaking) this.#armIdle('end');
      } else this.#actions.endIdle();
    });
  }

  #clearIdle(): void {
    if (this.#idle) {
      clearTimeout(this.#idle);
      this.#timers.delete(this.#idle);
      this.#idle = undefined;
    }
  }

  #after(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#stopped) fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
