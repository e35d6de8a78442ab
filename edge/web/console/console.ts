import { Ledger, LedgerError, type Fetch } from './api.ts';
import { AutoRefresh, type Every } from './auto-refresh.ts';
import { CallDetail, type EndMode } from './call-detail.ts';
import { CallsList } from './calls-list.ts';
import { ConfirmDialog } from './confirm-dialog.ts';
import { awaitsChange } from './model.ts';
import { SavedKey, SignInForm, type KeyStorage } from './sign-in.ts';
import { ConsoleState } from './state.ts';
import { ConsoleViews } from './views.ts';

const REFRESH_MS = 5_000;

/** What the console uses of the page: main.ts passes the browser's, a test its own. */
export type ConsoleDeps = {
  fetch: Fetch;
  /** Where the admin key is kept for the tab (sessionStorage). */
  storage: KeyStorage;
  /** Milliseconds since the epoch: what "today" and "the last two minutes" are measured from. */
  now: () => number;
  every: Every;
  /** The window: `#call=<room>` in its hash, `hashchange`, and whether the tab is hidden. */
  page: {
    readonly location: { readonly hash: string };
    readonly document: { readonly hidden: boolean };
    addEventListener(
      type: 'hashchange',
      listener: () => void,
      options: AddEventListenerOptions,
    ): void;
  };
};

/**
 * The calls console: sign in with the admin key, the recent calls with filters and paging, one
 * call's timeline, transcript, hooks, usage and latency, and ending an open call. What each
 * action does is here; what it shows is in the views it hands the results to. Returns unmount.
 */
export function mountConsole(root: HTMLElement, deps: ConsoleDeps): () => void {
  const lifetime = new AbortController();
  const { signal } = lifetime;
  const state = new ConsoleState();
  const savedKey = new SavedKey(deps.storage);
  const views = new ConsoleViews(root);
  const signIn = new SignInForm(root, (key) => void start(key), signal);
  const list = new CallsList(
    root,
    {
      filter: () => void loadList(true),
      refresh: () =>
        views.current === 'call' && state.shown
          ? void showCall(state.shown.room)
          : void loadList(true),
      more: () => void loadList(false),
    },
    signal,
  );
  const detail = new CallDetail(root, (mode) => void end(mode), signal);
  const confirm = new ConfirmDialog(root);
  const autoRefresh = new AutoRefresh(deps.every, REFRESH_MS, refresh);
  const today = () => new Date(deps.now());

  /**
   * A refused key goes back to the sign-in form; anything else is said and the view stays.
   * Returns the words said.
   */
  const failed = (err: unknown): string => {
    const e = err instanceof LedgerError ? err : new LedgerError(0, String(err));
    if (e.status === 401 || e.status === 403) {
      savedKey.forget();
      state.keyRefused();
      autoRefresh.stop();
      views.show('sign-in');
      signIn.focus();
    }
    views.say(e.message);
    return e.message;
  };

  async function start(key: string): Promise<void> {
    state.signIn(new Ledger(key, deps.fetch));
    try {
      await state.ledger!.list('', undefined, 1); // the key is checked before anything is shown
    } catch (err) {
      failed(err);
      return;
    }
    savedKey.save(key);
    signIn.clear();
    views.say('');
    autoRefresh.start();
    await route();
  }

  async function loadList(first: boolean): Promise<void> {
    if (!state.ledger) return;
    list.loading();
    try {
      const page = await state.ledger.list(
        list.filter,
        first ? undefined : (state.cursor ?? undefined),
        list.pageSize,
      );
      state.pageLoaded(page, first);
      views.say('');
    } catch (err) {
      list.loadFailed();
      failed(err);
      return;
    }
    renderList();
  }

  const renderList = () => list.render(state.calls, state.cursor, today());

  async function showCall(room: string): Promise<void> {
    if (!state.ledger) return;
    try {
      state.callShown(await state.ledger.call(room));
    } catch (err) {
      const words = failed(err);
      // A call that cannot be shown (no such room, the edge failing): the list, with the words.
      if (state.ledger) {
        views.show('calls');
        await loadList(true);
        views.say(words);
      }
      return;
    }
    views.say('');
    views.show('call');
    detail.render(state.shown!, today());
  }

  async function end(mode: EndMode): Promise<void> {
    if (!state.ledger || !state.shown) return;
    const room = state.shown.room;
    const ok = await confirm.ask(
      mode === 'end_for_all'
        ? `End call ${room} for everyone? The caller and the assistant are disconnected now.`
        : `Remove the assistant from call ${room}? The caller stays in the room.`,
      mode === 'end_for_all' ? 'End for everyone' : 'Remove the assistant',
    );
    if (!ok) return;
    detail.ending = true;
    try {
      const res = await state.ledger.end(room, mode);
      views.say('');
      if (state.shown?.room === room) await showCall(room);
      else detail.render(res.call, today());
    } catch (err) {
      failed(err);
    } finally {
      detail.ending = false;
    }
  }

  /** `#call=<room>` is one call; anything else the list. The key is never in the URL. */
  async function route(): Promise<void> {
    if (!state.ledger) return views.show('sign-in');
    const room = /^#call=(.+)$/.exec(deps.page.location.hash)?.[1];
    if (room) return showCall(decodeURIComponent(room));
    state.listShown();
    views.show('calls');
    await loadList(true);
  }

  /** One beat: the call on show while it may still change, or the list while it holds open calls. */
  async function refresh(): Promise<void> {
    if (!state.ledger || !list.autoRefresh || deps.page.document.hidden) return;
    try {
      if (views.current === 'call' && state.shown && awaitsChange(state.shown, deps.now())) {
        state.callShown(await state.ledger.call(state.shown.room));
        detail.render(state.shown, today());
      } else if (views.current === 'calls') {
        const status = list.filter;
        if (status !== 'open' && !state.calls.some((c) => c.status === 'open')) return;
        const first = await state.ledger.list(status);
        if (status === 'open') state.openCallsRefreshed(first);
        else {
          const stale = state.openCallsBeyond(first);
          const reread = await Promise.all(
            stale.slice(0, 10).map((c) => state.ledger!.call(c.room)),
          );
          state.callsRefreshed(first, reread);
        }
        renderList();
      }
    } catch (err) {
      failed(err);
    }
  }

  views.signOut.addEventListener(
    'click',
    () => {
      savedKey.forget();
      state.signOut();
      autoRefresh.stop();
      list.clear();
      views.say('');
      views.show('sign-in');
      signIn.focus();
    },
    { signal },
  );
  deps.page.addEventListener('hashchange', () => void route(), { signal });

  const saved = savedKey.get();
  if (saved) void start(saved);
  else {
    views.show('sign-in');
    signIn.focus();
  }
  return () => {
    lifetime.abort();
    autoRefresh.stop();
  };
}
