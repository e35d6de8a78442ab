import { hourlyChart, reasonsChart } from './charts.ts';
import { byId, h } from './dom.ts';
import {
  callsPerHour,
  durationInWords,
  endCallerInWords,
  endReasonCounts,
  endReasonInWords,
  statusInWords,
  timeInWords,
  type Call,
  type StatusFilter,
} from './model.ts';

export type CallsListActions = {
  /** The Show filter changed. */
  filter(): void;
  /** The Refresh button. */
  refresh(): void;
  /** Load more: the next page after the cursor. */
  more(): void;
};

/**
 * The recent-calls view: its toolbar (filter, auto-refresh, Refresh), one row per loaded call
 * (`data-room`, `data-status`), the status line, Load more and the two charts of the loaded window.
 */
export class CallsList {
  readonly #root: HTMLElement;
  readonly #filter: HTMLSelectElement;
  readonly #autoRefresh: HTMLInputElement;
  readonly #rows: HTMLTableSectionElement;
  readonly #status: HTMLElement;
  readonly #more: HTMLButtonElement;
  readonly #hourly: HTMLElement;
  readonly #reasons: HTMLElement;

  constructor(root: HTMLElement, on: CallsListActions, signal: AbortSignal) {
    this.#root = root;
    this.#filter = byId(root, 'status-filter');
    this.#autoRefresh = byId(root, 'auto-refresh');
    this.#rows = byId<HTMLTableElement>(root, 'calls').tBodies[0]!;
    this.#status = byId(root, 'list-status');
    this.#more = byId(root, 'more');
    this.#hourly = byId(root, 'hourly-chart');
    this.#reasons = byId(root, 'reasons-chart');
    this.#filter.addEventListener('change', () => on.filter(), { signal });
    byId(root, 'refresh').addEventListener('click', () => on.refresh(), { signal });
    this.#more.addEventListener('click', () => on.more(), { signal });
  }

  get filter(): StatusFilter {
    return this.#filter.value as StatusFilter;
  }

  /** Whether open calls refresh on their own (the checkbox). */
  get autoRefresh(): boolean {
    return this.#autoRefresh.checked;
  }

  /** Read at every load: `data-page-size` on the root (25 by default; tests page one at a time). */
  get pageSize(): number {
    return Number(this.#root.dataset.pageSize) || 25;
  }

  loading(): void {
    this.#status.textContent = 'Loading…';
  }

  /** A load that failed: the status line is cleared, the alert says why. */
  loadFailed(): void {
    this.#status.textContent = '';
  }

  clear(): void {
    this.#rows.replaceChildren();
  }

  render(calls: readonly Call[], cursor: string | null, now: Date): void {
    this.#rows.replaceChildren(
      ...calls.map((c) =>
        h(
          'tr',
          { 'data-room': c.room, 'data-status': c.status },
          h('td', {}, h('a', { href: `#call=${encodeURIComponent(c.room)}` }, c.room)),
          h('td', {}, h('span', { class: `badge ${c.status}` }, statusInWords(c))),
          h('td', {}, timeInWords(c.created_at, now)),
          h('td', {}, durationInWords(c.duration_seconds)),
          h(
            'td',
            { title: c.end_reason ?? '' },
            c.status === 'open' ? '—' : endReasonInWords(c.end_reason),
          ),
          h('td', {}, c.end_caller ? endCallerInWords(c.end_caller) : (c.ended_by ?? '—')),
        ),
      ),
    );
    const open = calls.filter((c) => c.status === 'open').length;
    this.#status.textContent = calls.length
      ? `${calls.length} calls loaded, ${open} open${cursor ? '; more below' : ''}.`
      : 'No calls.';
    this.#more.hidden = !cursor;
    this.#hourly.replaceChildren(hourlyChart(callsPerHour(calls)));
    this.#reasons.replaceChildren(reasonsChart(endReasonCounts(calls)));
  }
}
