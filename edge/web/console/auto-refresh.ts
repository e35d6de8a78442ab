/** Calls `tick` every `ms` until stopped; the returned function stops it (setInterval in a page). */
export type Every = (ms: number, tick: () => void) => () => void;

/**
 * The console's refresh loop: one beat every few seconds while signed in, never two at once (a
 * slow edge skips beats rather than piling requests up). What a beat does is the caller's.
 */
export class AutoRefresh {
  readonly #every: Every;
  readonly #ms: number;
  readonly #beat: () => Promise<void>;
  #stop: (() => void) | undefined;
  #busy = false;

  constructor(every: Every, ms: number, beat: () => Promise<void>) {
    this.#every = every;
    this.#ms = ms;
    this.#beat = beat;
  }

  start(): void {
    this.stop();
    this.#stop = this.#every(this.#ms, () => void this.#run());
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }

  async #run(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      await this.#beat();
    } finally {
      this.#busy = false;
    }
  }
}
