import type { Ledger } from './api.ts';
import { mergeCalls, type Call, type CallPage } from './model.ts';

/**
 * What the console holds between events: the signed-in ledger client, the loaded calls and the
 * cursor past them, and the call on show. Only the named transitions below change it.
 */
export class ConsoleState {
  #ledger: Ledger | undefined;
  #calls: Call[] = [];
  #cursor: string | null = null;
  #shown: Call | undefined;

  /** The ledger with the key in use; none before sign-in and after a refusal or Sign out. */
  get ledger(): Ledger | undefined {
    return this.#ledger;
  }
  /** The loaded calls, newest first. */
  get calls(): readonly Call[] {
    return this.#calls;
  }
  /** `next_cursor` of the last page loaded: more calls are past it. */
  get cursor(): string | null {
    return this.#cursor;
  }
  /** The call on show (`#call=<room>`), as last read. */
  get shown(): Call | undefined {
    return this.#shown;
  }

  /** A key was entered (or found in the tab): its ledger is used at once, to check it. */
  signIn(ledger: Ledger): void {
    this.#ledger = ledger;
  }

  /** The edge refused the key (401, 403): no ledger until the next sign-in. */
  keyRefused(): void {
    this.#ledger = undefined;
  }

  signOut(): void {
    this.#ledger = undefined;
    this.#calls = [];
    this.#shown = undefined;
  }

  /** A page of the list: the first replaces what is loaded, a further one is merged in. */
  pageLoaded(page: CallPage, first: boolean): void {
    this.#calls = first ? page.calls : mergeCalls(this.#calls, page.calls);
    this.#cursor = page.next_cursor;
  }

  /** The open-calls list refreshed: its first page is the list (a call that ended leaves it). */
  openCallsRefreshed(first: CallPage): void {
    this.#calls = first.calls;
    this.#cursor = first.next_cursor;
  }

  /** Loaded open calls that the refreshed first page no longer holds: read one by one. */
  openCallsBeyond(first: CallPage): Call[] {
    return this.#calls.filter(
      (c) => c.status === 'open' && !first.calls.some((f) => f.room === c.room),
    );
  }

  /** Any other list refreshed: its first page and the open calls read again, merged in. */
  callsRefreshed(first: CallPage, reread: Call[]): void {
    this.#calls = mergeCalls(mergeCalls(this.#calls, first.calls), reread);
    if (!this.#calls.length) this.#cursor = first.next_cursor;
  }

  callShown(call: Call): void {
    this.#shown = call;
  }

  /** Back to the list: no call on show. */
  listShown(): void {
    this.#shown = undefined;
  }
}
