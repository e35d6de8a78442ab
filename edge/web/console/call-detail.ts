import { byId, facts, h } from './dom.ts';
import { latencyTables } from './latency-tables.ts';
import {
  durationInWords,
  endedByInWords,
  endReasonInWords,
  statusInWords,
  timeInWords,
  timeline,
  type Call,
} from './model.ts';

export type EndMode = 'end_for_all' | 'remove_agent';

/**
 * One call's view: its facts, the end buttons (an open call only), timeline, transcript, hooks,
 * usage, latency and the report's errors. `data-status` on the view is the call's status.
 */
export class CallDetail {
  readonly #view: HTMLElement;
  readonly #title: HTMLElement;
  readonly #facts: HTMLElement;
  readonly #actions: HTMLElement;
  readonly #endButtons: HTMLButtonElement[];
  readonly #timeline: HTMLElement;
  readonly #transcript: HTMLElement;
  readonly #hooks: HTMLElement;
  readonly #usage: HTMLElement;
  readonly #latency: HTMLElement;
  readonly #errors: HTMLElement;

  constructor(root: HTMLElement, onEnd: (mode: EndMode) => void, signal: AbortSignal) {
    this.#view = byId(root, 'call-view');
    this.#title = byId(root, 'call-title');
    this.#facts = byId(root, 'call-facts');
    this.#actions = byId(root, 'call-actions');
    const endForAll = byId<HTMLButtonElement>(root, 'end-for-all');
    const removeAgent = byId<HTMLButtonElement>(root, 'remove-agent');
    this.#endButtons = [endForAll, removeAgent];
    this.#timeline = byId(root, 'timeline');
    this.#transcript = byId(root, 'transcript');
    this.#hooks = byId(root, 'hooks');
    this.#usage = byId(root, 'usage');
    this.#latency = byId(root, 'latency');
    this.#errors = byId(root, 'errors');
    endForAll.addEventListener('click', () => onEnd('end_for_all'), { signal });
    removeAgent.addEventListener('click', () => onEnd('remove_agent'), { signal });
  }

  /** Off while an end is being asked for, so it is asked once. */
  set ending(on: boolean) {
    this.#endButtons.forEach((b) => (b.disabled = on));
  }

  render(c: Call, now: Date): void {
    this.#view.dataset.status = c.status;
    this.#title.textContent = c.room;
    facts(this.#facts, [
      ['Status', h('span', { class: `badge ${c.status}` }, statusInWords(c))],
      ['Created', timeInWords(c.created_at, now)],
      ['Started', timeInWords(c.started_at, now)],
      ['Ended', timeInWords(c.ended_at, now)],
      ['Duration', durationInWords(c.duration_seconds)],
      ['End', c.end_reason ? `${endReasonInWords(c.end_reason)} (${c.end_reason})` : '—'],
      ['Ended by', endedByInWords(c)],
      ['Agent', c.agent_name && `${c.agent_name}${c.end_mode ? `, ${c.end_mode}` : ''}`],
      ['Revival attempts', String(c.revival_attempts)],
    ]);
    this.#actions.hidden = c.status !== 'open';
    this.#timeline.replaceChildren(
      ...timeline(c).map((e) =>
        h(
          'li',
          { 'data-kind': e.kind },
          h('time', { datetime: e.at }, timeInWords(e.at, now)),
          e.what,
        ),
      ),
    );
    const r = c.report;
    const none = (what: string) =>
      h('p', { class: 'none' }, c.status === 'open' ? `${what} come with the report.` : 'None.');
    this.#transcript.replaceChildren(
      ...(r?.transcript.length
        ? r.transcript.map((t) =>
            h(
              'li',
              { 'data-role': t.role },
              h('time', { datetime: t.at }, timeInWords(t.at, now)),
              h('span', { class: 'who' }, t.role === 'assistant' ? 'Assistant' : t.role),
              h('span', { class: 'words' }, t.text),
            ),
          )
        : [h('li', {}, none('The transcript will'))]),
    );
    this.#hooks.replaceChildren(
      r?.hooks.length
        ? h(
            'table',
            {},
            h(
              'thead',
              {},
              h('tr', {}, ...['Hook', 'Outcome', 'Time'].map((t) => h('th', { scope: 'col' }, t))),
            ),
            h(
              'tbody',
              {},
              ...r.hooks.map((k) =>
                h(
                  'tr',
                  { 'data-status': k.status },
                  h('td', {}, k.name),
                  h('td', {}, k.status, k.error ? `: ${k.error}` : ''),
                  h('td', { class: 'num' }, `${Math.round(k.duration_ms)} ms`),
                ),
              ),
            ),
          )
        : none('Hooks'),
    );
    facts(
      this.#usage,
      r
        ? [
            ['LLM prompt tokens', String(r.usage.llm_prompt_tokens ?? 0)],
            ['LLM completion tokens', String(r.usage.llm_completion_tokens ?? 0)],
            ['TTS characters', String(r.usage.tts_characters ?? 0)],
            ['STT seconds', (r.usage.stt_seconds ?? 0).toFixed(1)],
          ]
        : [['Report', c.status === 'open' ? 'comes when the call ends' : 'none received']],
    );
    this.#latency.replaceChildren(latencyTables(c, now));
    this.#errors.replaceChildren(
      ...(r?.errors.length
        ? r.errors.map((e) =>
            h(
              'li',
              {},
              h('time', { datetime: e.at }, timeInWords(e.at, now)),
              `${e.source}: ${e.message}`,
            ),
          )
        : [h('li', { class: 'none' }, r ? 'None.' : '—')]),
    );
  }
}
