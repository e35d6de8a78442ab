import { refusalInWords, type Call, type CallPage, type StatusFilter } from './model.ts';

/** A refusal or failure from the edge, already in words. */
export class LedgerError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** The page's `fetch`, or a test's. */
export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

/**
 * The ledger API (docs/api.md) with the admin key as the bearer credential, on this origin only
 * (the console's CSP allows nothing else). The key stays in this object and sessionStorage.
 */
export class Ledger {
  readonly #key: string;
  readonly #fetch: Fetch;
  constructor(key: string, fetcher: Fetch = fetch) {
    this.#key = key;
    this.#fetch = fetcher;
  }

  list(status: StatusFilter, cursor?: string, limit = 25): Promise<CallPage> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (status) q.set('status', status);
    if (cursor) q.set('cursor', cursor);
    return this.#json(`/calls?${q}`);
  }

  call(room: string): Promise<Call> {
    return this.#json(`/calls/${encodeURIComponent(room)}`);
  }

  end(room: string, mode: 'end_for_all' | 'remove_agent'): Promise<{ call: Call }> {
    return this.#json(`/calls/${encodeURIComponent(room)}/end`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mode, reason: 'ended from the calls console' }),
    });
  }

  async #json<T>(path: string, init: RequestInit = {}): Promise<T> {
    let res: Response;
    // Called with no receiver: a browser's fetch called as this object's method throws.
    const fetcher = this.#fetch;
    try {
      res = await fetcher(path, {
        ...init,
        cache: 'no-store',
        headers: { ...init.headers, authorization: `Bearer ${this.#key}` },
      });
    } catch {
      throw new LedgerError(0, refusalInWords(0));
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.ok && body) return body as T;
    const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new LedgerError(res.status, refusalInWords(res.status, error?.code, error?.message));
  }
}
