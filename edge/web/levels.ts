/**
 * Level meters driven by the real audio: each followed track goes through a Web Audio
 * AnalyserNode (nothing reaches the speakers from here), and every animation frame the meter's
 * `--level` (0–1) and `data-active` follow its loudness. The AudioContext is made inside the click
 * that starts the call, so browsers let it run.
 */
export class Levels {
  readonly #ctx: AudioContext;
  readonly #meters = new Map<
    HTMLElement,
    { analyser: AnalyserNode; source: MediaStreamAudioSourceNode; level: number }
  >();
  readonly #samples = new Float32Array(512);
  #frame = 0;

  constructor() {
    this.#ctx = new AudioContext();
  }

  /** Shows `track`'s loudness on `meter` until `stop(meter)` or `close()`. */
  follow(meter: HTMLElement, track: MediaStreamTrack): void {
    this.stop(meter);
    const source = this.#ctx.createMediaStreamSource(new MediaStream([track]));
    const analyser = this.#ctx.createAnalyser();
    analyser.fftSize = this.#samples.length;
    source.connect(analyser);
    this.#meters.set(meter, { analyser, source, level: 0 });
    void this.#ctx.resume();
    this.#frame ||= requestAnimationFrame(this.#draw);
  }

  stop(meter: HTMLElement): void {
    const m = this.#meters.get(meter);
    if (!m) return;
    m.source.disconnect();
    this.#meters.delete(meter);
    show(meter, 0);
  }

  close(): void {
    for (const meter of [...this.#meters.keys()]) this.stop(meter);
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    void this.#ctx.close();
  }

  readonly #draw = () => {
    for (const [meter, m] of this.#meters) {
      m.analyser.getFloatTimeDomainData(this.#samples);
      let sum = 0;
      for (const v of this.#samples) sum += v * v;
      // Speech RMS is roughly 0.01–0.3: a square-root scale makes a quiet voice visible.
      const now = Math.min(1, Math.sqrt(Math.sqrt(sum / this.#samples.length) * 4));
      m.level = now > m.level ? now : m.level * 0.85 + now * 0.15; // fast up, slow down
      show(meter, m.level);
    }
    this.#frame = this.#meters.size ? requestAnimationFrame(this.#draw) : 0;
  };
}

function show(meter: HTMLElement, level: number): void {
  meter.style.setProperty('--level', level.toFixed(3));
  const active = level > 0.12 ? 'true' : 'false';
  if (meter.dataset.active !== active) meter.dataset.active = active;
}
