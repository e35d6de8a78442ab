import { describe, expect, it } from 'vitest';
import { askAdmission } from '../../agent/call-admission.ts';
import { verifySignedBody } from '../../wire-contract/index.ts';

const ask = { room: 'call-1', room_sid: 'RM_1', job_id: 'AJ_1' };
const keys = { apiKey: 'key', apiSecret: 'secret-secret-secret' };

/** A fake edge answering each try in turn; records what it was sent. */
function edge(...answers: (() => Promise<Response> | Response)[]) {
  const seen: { url: string; signed: boolean }[] = [];
  const fetchImpl = (async (url: string, init: RequestInit) => {
    const body = String(init.body);
    const auth = new Headers(init.headers).get('authorization') ?? undefined;
    seen.push({
      url,
      signed: (await verifySignedBody(body, auth, keys.apiKey, keys.apiSecret)).ok,
    });
    const next = answers[Math.min(seen.length - 1, answers.length - 1)]!;
    return next();
  }) as unknown as typeof fetch;
  return { seen, fetchImpl };
}
const options = (fetchImpl: typeof fetch, timeoutMs = 3_000) => ({
  edgeUrl: 'http://edge.test/',
  ...keys,
  timeoutMs,
  fetchImpl,
});

describe('asking the edge before any model work', () => {
  it('sends one signed request to /calls/:room/admit and follows a refusal', async () => {
    const e = edge(() => Response.json({ admit: false, reason: 'call_ended' }));
    expect(await askAdmission(ask, options(e.fetchImpl))).toEqual({
      admit: false,
      reason: 'call_ended',
    });
    expect(e.seen).toEqual([{ url: 'http://edge.test/calls/call-1/admit', signed: true }]);
  });

  it('retries a failing edge within the budget, and follows its answer once it comes', async () => {
    const e = edge(
      () => Promise.reject(new TypeError('fetch failed')),
      () => new Response('busy', { status: 503 }),
      () => Response.json({ admit: false, reason: 'call_ended' }),
    );
    expect(await askAdmission(ask, options(e.fetchImpl))).toMatchObject({ admit: false });
    expect(e.seen).toHaveLength(3);
  });

  it('admits the call, naming the problem, when the edge stays down for the whole budget', async () => {
    const e = edge(() => Promise.reject(new TypeError('fetch failed')));
    const answer = await askAdmission(ask, options(e.fetchImpl, 500));
    expect(answer).toMatchObject({ admit: true, asked: false, problem: 'fetch failed' });
    expect(e.seen.length).toBeGreaterThan(1);
  });

  it('does not retry a request the edge refused as such (401), and admits', async () => {
    const e = edge(() => new Response('no', { status: 401 }));
    expect(await askAdmission(ask, options(e.fetchImpl))).toMatchObject({
      admit: true,
      problem: 'edge answered 401',
    });
    expect(e.seen).toHaveLength(1);
  });
});
