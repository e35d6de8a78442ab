import { voice, type llm, type metrics } from '@livekit/agents';
import {
  MAX_TURNS_IN_REPORT,
  type LatencySummary,
  type TurnLatency,
} from '../../wire-contract/index.ts';
import type { LogFn } from '../log.ts';

/**
 * Per-turn latency from agents-js's own measurements, nothing timed here:
 * - `metrics_collected` on the session: EOU metrics (`endOfUtteranceDelayMs`,
 *   `transcriptionDelayMs`), LLM metrics (`ttftMs`) and TTS metrics (`ttfbMs`), which agents-js tags
 *   with the id of the speech they belong to;
 * - the assistant message a speech adds to the chat, whose `metrics.e2eLatency` (seconds) runs from
 *   the caller's last word to the agent's first audio out.
 * A turn is a speech that answers the caller (it has EOU metrics): the greeting, idle prompts and
 * other `say`s are not turns. The first LLM and TTS measurement of a speech count (a tool call's
 * follow-up reply is not the time the caller waited).
 */
export class TurnLatencies {
  readonly #bySpeech = new Map<string, TurnLatency & { done?: boolean }>();
  readonly #order: string[] = [];
  readonly #onTurn?: (turn: TurnLatency) => void;

  constructor(opts: { onTurn?: (turn: TurnLatency) => void } = {}) {
    this.#onTurn = opts.onTurn;
  }

  /** Feed every `metrics_collected` event's metrics here. */
  metrics(m: metrics.AgentMetrics): void {
    if (m.type === 'eou_metrics') {
      const t = this.#turn(m.speechId, m.timestamp);
      if (!t) return;
      t.eou_delay_ms = ms(m.endOfUtteranceDelayMs);
      t.transcription_delay_ms = ms(m.transcriptionDelayMs);
      // A speech that finished before its EOU metrics arrived is reported now.
      if (t.done) this.#report(t);
    } else if (m.type === 'llm_metrics') {
      const t = this.#turn(m.speechId, m.timestamp);
      if (t && t.llm_ttft_ms === undefined && m.ttftMs >= 0) t.llm_ttft_ms = ms(m.ttftMs);
    } else if (m.type === 'tts_metrics') {
      const t = this.#turn(m.speechId, m.timestamp);
      if (t && t.tts_ttfb_ms === undefined && m.ttfbMs >= 0) t.tts_ttfb_ms = ms(m.ttfbMs);
    }
  }

  /** A speech has finished (played, interrupted or dropped): take its end-to-end latency. */
  speechDone(speechId: string, items: llm.ChatItem[], interrupted: boolean): void {
    const t = this.#bySpeech.get(speechId);
    if (!t || t.done) return;
    t.done = true;
    const answer = items.find(
      (i): i is llm.ChatMessage => i.type === 'message' && i.role === 'assistant',
    );
    const e2e = answer?.metrics?.e2eLatency;
    if (typeof e2e === 'number' && e2e >= 0) t.e2e_ms = ms(e2e * 1000);
    if (interrupted) t.interrupted = true;
    if (t.eou_delay_ms !== undefined) this.#report(t);
  }

  /** Follows a session: its metrics and the end of each of its speeches. */
  watch(session: voice.AgentSession): void {
    session.on(voice.AgentSessionEventTypes.MetricsCollected, (ev) => this.metrics(ev.metrics));
    session.on(voice.AgentSessionEventTypes.SpeechCreated, (ev) => {
      const handle = ev.speechHandle;
      handle.addDoneCallback(() =>
        this.speechDone(handle.id, handle.chatItems, handle.interrupted),
      );
    });
  }

  /** The caller's turns, oldest first (at most the contract's limit: the latest are kept). */
  turns(): TurnLatency[] {
    return this.#order
      .map((id) => this.#bySpeech.get(id)!)
      .filter((t) => t.eou_delay_ms !== undefined)
      .map(({ done: _done, ...t }) => t)
      .slice(-MAX_TURNS_IN_REPORT);
  }

  summary(): LatencySummary {
    return summarize(this.turns());
  }

  #turn(speechId: string | undefined, timestamp: number) {
    if (!speechId) return undefined;
    let t = this.#bySpeech.get(speechId);
    if (!t) {
      t = {
        at: new Date(timestamp || Date.now()).toISOString(),
        speech_id: speechId.slice(0, 128),
      };
      this.#bySpeech.set(speechId, t);
      this.#order.push(speechId);
    }
    return t;
  }

  #report(t: TurnLatency & { done?: boolean }) {
    const { done: _done, ...turn } = t;
    this.#onTurn?.(turn);
  }
}

const MEASURES = [
  'eou_delay_ms',
  'transcription_delay_ms',
  'llm_ttft_ms',
  'tts_ttfb_ms',
  'e2e_ms',
] as const;

/** p50 and p95 (nearest rank) of each measure over `turns`; a measure with no samples is absent. */
export function summarize(turns: TurnLatency[]): LatencySummary {
  const out: LatencySummary = { turns: turns.length };
  for (const key of MEASURES) {
    const values = turns.flatMap((t) => (t[key] === undefined ? [] : [t[key]]));
    if (values.length) out[key] = { p50: percentile(values, 50), p95: percentile(values, 95) };
  }
  return out;
}

/** Nearest-rank percentile: the smallest value with at least p % of the values at or below it. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

const ms = (value: number) => Math.max(0, Math.round(value));

/**
 * The call's collector. agents-js runs one job per process (a forked child per job), so the job
 * registers its collector here and the report, built later by the end steps, finds it.
 */
let current: TurnLatencies | undefined;

/** Starts collecting this session's turn latencies for the report; logs one debug line per turn. */
export function watchLatency(session: voice.AgentSession, log?: LogFn): TurnLatencies {
  current = new TurnLatencies({ onTurn: (turn) => log?.('debug', 'turn latency', { ...turn }) });
  current.watch(session);
  return current;
}

/** The collector `watchLatency` registered in this process, if any. */
export function callLatency(): TurnLatencies | undefined {
  return current;
}
