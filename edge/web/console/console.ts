import { Ledger, LedgerError } from './api.ts';
import { hourlyChart, reasonsChart } from './charts.ts';
import {
  callsPerHour,
  durationInWords,
  endCallerInWords,
  endedByInWords,
  endReasonCounts,
  endReasonInWords,
  LATENCY_MEASURES,
  mergeCalls,
  statusInWords,
  timeInWords,
  timeline,
  type Call,
  type StatusFilter,
} from './model.ts';

const KEY = 'lkvc.console.admin-key';
const REFRESH_MS = 5_000;

type Child = Node | string | null | undefined | false;
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}
const facts = (dl: HTMLElement, rows: [string, Child][]) =>
  dl.replaceChildren(...rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v ?? '—'))));

/**
 * The calls console: sign in with the admin key, the recent calls with filters and paging, one
 * call's timeline, transcript, hooks, usage and latency, and ending an open call. The DOM is built
 * with textContent only: what the ledger holds (transcripts, notes) is never parsed as markup.
 * `data-view` on the root (sign-in, calls, call) lets tests follow it.
 */
export function mountConsole(root: HTMLElement): void {
  const $ = <T extends HTMLElement>(id: string) => {
    const el = root.querySelector<T>(`#${id}`);
    if (!el) throw new Error(`console markup is missing #${id}`);
    return el;
  };
  const alertBox = $('alert');
  const signIn = $<HTMLFormElement>('sign-in');
  const keyInput = $<HTMLInputElement>('admin-key');
  const signOut = $<HTMLButtonElement>('sign-out');
  const callsView = $('calls-view');
  const callView = $('call-view');
  const filter = $<HTMLSelectElement>('status-filter');
  const autoRefresh = $<HTMLInputElement>('auto-refresh');
  const rows = $<HTMLTableElement>('calls').tBodies[0]!;
  const listStatus = $('list-status');
  const more = $<HTMLButtonElement>('more');
  const dialog = $<HTMLDialogElement>('confirm');

  let ledger: Ledger | undefined;
  let calls: Call[] = [];
  let cursor: string | null = null;
  let shown: Call | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  let busy = false;

  const say = (message: string) => {
    alertBox.textContent = message;
    alertBox.hidden = !message;
  };
  const view = (name: 'sign-in' | 'calls' | 'call') => {
    root.dataset.view = name;
    signIn.hidden = name !== 'sign-in';
    callsView.hidden = name !== 'calls';
    callView.hidden = name !== 'call';
    signOut.hidden = name === 'sign-in';
  };

  /** A refused key goes back to the sign-in form; anything else is said and the view stays. */
  const failed = (err: unknown) => {
    const e = err instanceof LedgerError ? err : new LedgerError(0, String(err));
    if (e.status === 401 || e.status === 403) {
      sessionStorage.removeItem(KEY);
      ledger = undefined;
      stopRefresh();
      view('sign-in');
      keyInput.focus();
    }
    say(e.message);
  };

  async function start(key: string): Promise<void> {
    ledger = new Ledger(key);
    try {
      await ledger.list('', undefined, 1); // the key is checked before anything is shown
    } catch (err) {
      return failed(err);
    }
    sessionStorage.setItem(KEY, key);
    keyInput.value = '';
    say('');
    startRefresh();
    await route();
  }

  async function loadList(reset: boolean): Promise<void> {
    if (!ledger) return;
    listStatus.textContent = 'Loading…';
    try {
      const page = await ledger.list(
        filter.value as StatusFilter,
        reset ? undefined : (cursor ?? undefined),
        Number(root.dataset.pageSize) || 25,
      );
      calls = reset ? page.calls : mergeCalls(calls, page.calls);
      cursor = page.next_cursor;
      say('');
    } catch (err) {
      listStatus.textContent = '';
      return failed(err);
    }
    renderList();
  }

  function renderList(): void {
    rows.replaceChildren(
      ...calls.map((c) =>
        h(
          'tr',
          { 'data-room': c.room, 'data-status': c.status },
          h('td', {}, h('a', { href: `#call=${encodeURIComponent(c.room)}` }, c.room)),
          h('td', {}, h('span', { class: `badge ${c.status}` }, statusInWords(c))),
          h('td', {}, timeInWords(c.created_at)),
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
    listStatus.textContent = calls.length
      ? `${calls.length} calls loaded, ${open} open${cursor ? '; more below' : ''}.`
      : 'No calls.';
    more.hidden = !cursor;
    $('hourly-chart').replaceChildren(hourlyChart(callsPerHour(calls)));
    $('reasons-chart').replaceChildren(reasonsChart(endReasonCounts(calls)));
  }

  async function showCall(room: string): Promise<void> {
    if (!ledger) return;
    try {
      shown = await ledger.call(room);
    } catch (err) {
      failed(err);
      // A call that cannot be shown (no such room, the edge failing): the list, with the words.
      if (ledger) {
        view('calls');
        await loadList(true);
        say(err instanceof LedgerError ? err.message : String(err));
      }
      return;
    }
    say('');
    view('call');
    renderCall(shown);
  }

  function renderCall(c: Call): void {
    callView.dataset.status = c.status;
    $('call-title').textContent = c.room;
    facts($('call-facts'), [
      ['Status', h('span', { class: `badge ${c.status}` }, statusInWords(c))],
      ['Created', timeInWords(c.created_at)],
      ['Started', timeInWords(c.started_at)],
      ['Ended', timeInWords(c.ended_at)],
      ['Duration', durationInWords(c.duration_seconds)],
      ['End', c.end_reason ? `${endReasonInWords(c.end_reason)} (${c.end_reason})` : '—'],
      ['Ended by', endedByInWords(c)],
      ['Agent', c.agent_name && `${c.agent_name}${c.end_mode ? `, ${c.end_mode}` : ''}`],
      ['Revival attempts', String(c.revival_attempts)],
    ]);
    $('call-actions').hidden = c.status !== 'open';
    $('timeline').replaceChildren(
      ...timeline(c).map((e) =>
        h('li', { 'data-kind': e.kind }, h('time', { datetime: e.at }, timeInWords(e.at)), e.what),
      ),
    );
    const r = c.report;
    const none = (what: string) =>
      h('p', { class: 'none' }, c.status === 'open' ? `${what} come with the report.` : 'None.');
    $('transcript').replaceChildren(
      ...(r?.transcript.length
        ? r.transcript.map((t) =>
            h(
              'li',
              { 'data-role': t.role },
              h('time', { datetime: t.at }, timeInWords(t.at)),
              h('span', { class: 'who' }, t.role === 'assistant' ? 'Assistant' : t.role),
              h('span', { class: 'words' }, t.text),
            ),
          )
        : [h('li', {}, none('The transcript will'))]),
    );
    $('hooks').replaceChildren(
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
      $('usage'),
      r
        ? [
            ['LLM prompt tokens', String(r.usage.llm_prompt_tokens ?? 0)],
            ['LLM completion tokens', String(r.usage.llm_completion_tokens ?? 0)],
            ['TTS characters', String(r.usage.tts_characters ?? 0)],
            ['STT seconds', (r.usage.stt_seconds ?? 0).toFixed(1)],
          ]
        : [['Report', c.status === 'open' ? 'comes when the call ends' : 'none received']],
    );
    $('latency').replaceChildren(latency(c));
    $('errors').replaceChildren(
      ...(r?.errors.length
        ? r.errors.map((e) =>
            h(
              'li',
              {},
              h('time', { datetime: e.at }, timeInWords(e.at)),
              `${e.source}: ${e.message}`,
            ),
          )
        : [h('li', { class: 'none' }, r ? 'None.' : '—')]),
    );
  }

  function latency(c: Call): Node {
    const r = c.report;
    const measured = LATENCY_MEASURES.filter(([k]) => r?.latency?.[k]);
    if (!r || (!measured.length && !r.turns?.length))
      return h(
        'p',
        { class: 'none' },
        !r ? '—' : r.latency ? 'No answered turns were measured.' : 'This report has no latency.',
      );
    const ms = (n: number | undefined) => (n == null ? '—' : `${Math.round(n)} ms`);
    const wrap = h('div', {});
    if (r.latency && measured.length)
      wrap.append(
        h(
          'table',
          { id: 'latency-summary', class: 'compact' },
          h('caption', {}, `Over ${r.latency.turns} turn${r.latency.turns === 1 ? '' : 's'}`),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Measure'),
              ...['p50', 'p95'].map((t) => h('th', { scope: 'col', class: 'num' }, t)),
            ),
          ),
          h(
            'tbody',
            {},
            ...measured.map(([k, label]) =>
              h(
                'tr',
                {},
                h('th', { scope: 'row' }, label),
                h('td', { class: 'num' }, ms(r.latency![k]!.p50)),
                h('td', { class: 'num' }, ms(r.latency![k]!.p95)),
              ),
            ),
          ),
        ),
      );
    if (r.turns?.length)
      wrap.append(
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { id: 'latency-turns' },
            h('caption', {}, 'Each turn'),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', { scope: 'col' }, 'Turn'),
                ...LATENCY_MEASURES.map(([, label]) =>
                  h('th', { scope: 'col', class: 'num' }, label),
                ),
              ),
            ),
            h(
              'tbody',
              {},
              ...r.turns.map((t) =>
                h(
                  'tr',
                  {},
                  h('td', {}, timeInWords(t.at), t.interrupted ? ' (interrupted)' : ''),
                  ...LATENCY_MEASURES.map(([k]) => h('td', { class: 'num' }, ms(t[k]))),
                ),
              ),
            ),
          ),
        ),
      );
    return wrap;
  }

  function confirm(text: string, yes: string): Promise<boolean> {
    $('confirm-text').textContent = text;
    $('confirm-yes').textContent = yes;
    dialog.showModal();
    $('confirm-no').focus();
    return new Promise((resolve) => {
      const done = (ok: boolean) => () => {
        dialog.close();
        resolve(ok);
      };
      $('confirm-yes').onclick = done(true);
      $('confirm-no').onclick = done(false);
      dialog.oncancel = done(false);
    });
  }

  async function end(mode: 'end_for_all' | 'remove_agent'): Promise<void> {
    if (!ledger || !shown) return;
    const room = shown.room;
    const ok = await confirm(
      mode === 'end_for_all'
        ? `End call ${room} for everyone? The caller and the assistant are disconnected now.`
        : `Remove the assistant from call ${room}? The caller stays in the room.`,
      mode === 'end_for_all' ? 'End for everyone' : 'Remove the assistant',
    );
    if (!ok) return;
    const buttons = [$<HTMLButtonElement>('end-for-all'), $<HTMLButtonElement>('remove-agent')];
    buttons.forEach((b) => (b.disabled = true));
    try {
      const res = await ledger.end(room, mode);
      say('');
      if (shown?.room === room) await showCall(room);
      else renderCall(res.call);
    } catch (err) {
      failed(err);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  /** `#call=<room>` is one call; anything else the list. The key is never in the URL. */
  async function route(): Promise<void> {
    if (!ledger) return view('sign-in');
    const room = /^#call=(.+)$/.exec(location.hash)?.[1];
    if (room) return showCall(decodeURIComponent(room));
    shown = undefined;
    view('calls');
    await loadList(true);
  }

  /** An open call, or one that ended in the last two minutes and whose report is not in yet. */
  const awaited = (c: Call) =>
    c.status === 'open' ||
    (!c.report && c.ended_at != null && Date.now() - Date.parse(c.ended_at) < 120_000);

  async function refresh(): Promise<void> {
    if (!ledger || busy || !autoRefresh.checked || document.hidden) return;
    busy = true;
    try {
      if (root.dataset.view === 'call' && shown && awaited(shown)) {
        shown = await ledger.call(shown.room);
        renderCall(shown);
      } else if (root.dataset.view === 'calls') {
        const status = filter.value as StatusFilter;
        if (status !== 'open' && !calls.some((c) => c.status === 'open')) return;
        const first = await ledger.list(status);
        if (status === 'open') {
          calls = first.calls; // an open call that ended leaves this list
          cursor = first.next_cursor;
        } else {
          const stale = calls.filter(
            (c) => c.status === 'open' && !first.calls.some((f) => f.room === c.room),
          );
          const updated = await Promise.all(stale.slice(0, 10).map((c) => ledger!.call(c.room)));
          calls = mergeCalls(mergeCalls(calls, first.calls), updated);
          if (!calls.length) cursor = first.next_cursor;
        }
        renderList();
      }
    } catch (err) {
      failed(err);
    } finally {
      busy = false;
    }
  }
  const startRefresh = () => {
    stopRefresh();
    timer = setInterval(() => void refresh(), REFRESH_MS);
  };
  function stopRefresh(): void {
    clearInterval(timer);
    timer = undefined;
  }

  signIn.addEventListener('submit', (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (key) void start(key);
  });
  signOut.addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    ledger = undefined;
    calls = [];
    shown = undefined;
    stopRefresh();
    rows.replaceChildren();
    say('');
    view('sign-in');
    keyInput.focus();
  });
  filter.addEventListener('change', () => void loadList(true));
  $('refresh').addEventListener('click', () =>
    root.dataset.view === 'call' && shown ? void showCall(shown.room) : void loadList(true),
  );
  more.addEventListener('click', () => void loadList(false));
  $('end-for-all').addEventListener('click', () => void end('end_for_all'));
  $('remove-agent').addEventListener('click', () => void end('remove_agent'));
  addEventListener('hashchange', () => void route());

  const saved = sessionStorage.getItem(KEY);
  if (saved) void start(saved);
  else {
    view('sign-in');
    keyInput.focus();
  }
}

mountConsole(document.getElementById('console')!);
