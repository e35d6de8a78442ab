import { TokenSource } from 'livekit-client';
import { edgeErrorFromTokenSource, errorFields, type EdgeError } from './call-messages.ts';

/** How the page asks the edge for its token (part of CallPageOptions, docs/web-client.md). */
export type TokenOptions = {
  /** LiveKit's standard token endpoint. Default: `/token` on this origin. */
  tokenUrl?: string;
  /** The end user's credential for /token, e.g. `Bearer <JWT from your identity provider>`. */
  getAuthorization?: () => string | undefined | Promise<string | undefined>;
  participantName?: string;
  /** An agent on the edge's allow-list; default: the edge's AGENT_NAME. */
  agentName?: string;
};

/** What /token gives a call: where LiveKit is, and this participant's token for the room. */
export type CallCredentials = { serverUrl: string; participantToken: string };

/** The edge refused (`edge`, its answer), or could not be reached or read (`edge` undefined). */
export class EdgeRefusal extends Error {
  readonly edge: EdgeError | undefined;
  constructor(edge: EdgeError | undefined) {
    super(edge ? `the edge answered ${edge.status}` : 'the edge could not be reached');
    this.edge = edge;
  }
}

/** What the edge said to a request that failed; undefined if it said nothing the page could read. */
export const refusalOf = (err: unknown): EdgeError | undefined =>
  err instanceof EdgeRefusal ? err.edge : undefined;

/**
 * Every request the call page makes to the edge (docs/api.md): the token, the recorded end of a
 * call, and ending it for everyone. The token URL names the edge; the call's own routes are on
 * its origin, asked with the participant's LiveKit token. Each method resolves with what the page
 * reads, or throws an EdgeRefusal.
 */
export class CallApi {
  readonly #tokenUrl: URL;
  readonly #options: TokenOptions;

  constructor(options: TokenOptions) {
    this.#tokenUrl = new URL(options.tokenUrl ?? '/token', location.href);
    this.#options = options;
  }

  /** LiveKit's standard token-endpoint client, a new one for every call. */
  async token(): Promise<CallCredentials> {
    try {
      const authorization = await this.#options.getAuthorization?.();
      const source = TokenSource.endpoint(this.#tokenUrl.href, {
        headers: authorization ? { Authorization: authorization } : {},
      });
      const { participantName, agentName } = this.#options;
      return await source.fetch({
        ...(participantName && { participantName }),
        ...(agentName && { agentName }),
      });
    } catch (err) {
      throw new EdgeRefusal(edgeErrorFromTokenSource(err));
    }
  }

  /** The end reason the ledger recorded for the call (the caller view), if it has one. */
  async recordedEnd(room: string, participantToken: string): Promise<string | undefined> {
    const call = (await this.#request(`/calls/${encodeURIComponent(room)}`, participantToken)) as
      { end_reason?: unknown } | undefined;
    return typeof call?.end_reason === 'string' ? call.end_reason : undefined;
  }

  async endForAll(room: string, participantToken: string): Promise<void> {
    await this.#request(`/calls/${encodeURIComponent(room)}/end`, participantToken, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mode: 'end_for_all' }),
    });
  }

  /** One request on the edge's origin: its JSON answer (undefined if none), or an EdgeRefusal. */
  async #request(path: string, participantToken: string, init: RequestInit = {}): Promise<unknown> {
    let refused: EdgeError | undefined;
    try {
      const res = await fetch(new URL(path, this.#tokenUrl), {
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${participantToken}` },
      });
      if (res.ok) return await res.json().catch(() => undefined);
      refused = { status: res.status, ...errorFields(await res.text()) };
    } catch {
      /* not reached, or its answer could not be read */
    }
    throw new EdgeRefusal(refused);
  }
}
