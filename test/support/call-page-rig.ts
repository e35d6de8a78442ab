import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { openCallPage, openPage, type CallPage } from './browser.ts';
import { whatThePageSays } from './call-page-steps.ts';
import { systemForThisFile } from './e2e-system.ts';
import { testIdentityProvider } from './identity-provider.ts';
import { renderSilence } from './speech.ts';
import type { System } from './system.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

/**
 * The real system behind the edge's call page, for one test file of Chromium tests: LiveKit, the
 * edge under wrangler dev (an app identity provider configured), the built agent and the OpenAI
 * stand-in. The page's signal connection goes through a TCP proxy a test can cut or refuse. Each
 * test's page is closed after it; a test fails if Chromium logged a CSP violation, and a failed
 * one prints what the page said.
 */
export class CallPageRig {
  readonly system: System & { readonly skipped: boolean };
  signal!: TcpProxy;
  signUserJwt!: (sub: string) => Promise<string>;
  #open: CallPage | undefined;

  constructor(
    what: string,
    opts: { edgeVars?: Record<string, string>; agentEnv?: Record<string, string> } = {},
  ) {
    let idpVars: Record<string, string> = {};
    // Registered before the system's own hooks, so the proxy and the identity provider are up
    // when the edge starts.
    beforeAll(async () => {
      if (this.skipped) return;
      const idp = await testIdentityProvider();
      this.signUserJwt = idp.signUserJwt;
      idpVars = idp.edgeVars;
      this.signal = await startTcpProxy(() => Number(new URL(this.system.livekit.url).port));
    });
    afterAll(async () => {
      await this.signal?.close();
    });
    this.system = systemForThisFile(what, {
      needs: ['chromium', 'speech'],
      agentEnv: opts.agentEnv,
      edgeVars: () => ({ LIVEKIT_URL: this.signal.url, ...opts.edgeVars, ...idpVars }),
    });
    afterEach(async ({ task }) => {
      const p = this.#open;
      this.#open = undefined;
      if (this.signal) this.signal.refusing = false;
      if (!p) return;
      if (task.result?.state === 'fail')
        console.error('the page said:', await whatThePageSays(p).catch(String));
      await p.close();
      // Every call runs under the CSP the edge sets: anything it blocked is a failure.
      expect(p.cspViolations).toEqual([]);
    });
  }

  get skipped(): boolean {
    return this.system.skipped;
  }

  /** A minute of silence as the microphone. */
  silence(): string {
    return renderSilence(`${this.system.dir}/speech`, 60);
  }

  /** The edge's call page at a phone's width, the microphone silent unless told otherwise. */
  async openCallPage(opts: Partial<Parameters<typeof openCallPage>[1]> = {}): Promise<CallPage> {
    this.#open = await openCallPage(`${this.system.edge.url}/`, {
      micWav: this.silence(),
      ...opts,
    });
    return this.#open;
  }

  /** The page without a microphone, as `openPage` in browser.ts. */
  async openPlainPage(opts: Parameters<typeof openPage>[1]): Promise<CallPage> {
    this.#open = await openPage(`${this.system.edge.url}/`, opts);
    return this.#open;
  }
}
