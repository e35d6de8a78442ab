import { describe, expect, it } from 'vitest';
import { askAdmission, askBeforeJoining, JOIN_MARGIN_MS } from '../../agent/call/admission.ts';
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

describe('a job that joins late asks again before it joins', () => {
  const now = () => 1_000_000;
  it('keeps the time to join the edge gives as a local deadline', async () => {
    const e = edge(() => Response.json({ admit: true, join_within_ms: 15_000 }));
    expect(await askAdmission(ask, { ...options(e.fetchImpl), now })).toEqual({
      admit: true,
      asked: true,
      joinBy: 1_015_000,
    });
  });

  it('asks nothing when it joins in good time: the greeting waits on no second round trip', async () => {
    const e = edge(() => Response.json({ admit: false, reason: 'superseded' }));
    const joinBy = now() + JOIN_MARGIN_MS + 1;
    expect(await askBeforeJoining(ask, joinBy, { ...options(e.fetchImpl), now })).toMatchObject({
      admit: true,
    });
    expect(e.seen).toHaveLength(0);
  });

  it('asks again (saying it is joining) once it is near or past its time, and follows a "superseded"', async () => {
    const sent: unknown[] = [];
    const e = edge(() => Response.json({ admit: false, reason: 'superseded' }));
    const fetchImpl = (async (url: string, init: RequestInit) => {
      sent.push(JSON.parse(String(init.body)));
      return e.fetchImpl(url, init);
    }) as typeof fetch;
    const joinBy = now() + JOIN_MARGIN_MS - 1;
    expect(await askBeforeJoining(ask, joinBy, { ...options(fetchImpl), now })).toEqual({
      admit: false,
      reason: 'superseded',
    });
    expect(sent).toEqual([{ ...ask, joining: true }]);
    expect(e.seen).toEqual([{ url: 'http://edge.test/calls/call-1/admit', signed: true }]);
  });

  it('asks nothing of an edge that gave no time to join (an older edge, or a room it does not govern)', async () => {
    const e = edge(() => Response.json({ admit: false, reason: 'superseded' }));
    expect(await askBeforeJoining(ask, undefined, options(e.fetchImpl))).toMatchObject({
      admit: true,
    });
    expect(e.seen).toHaveLength(0);
  });

  it('takes the call when the edge cannot answer the second time either', async () => {
    const e = edge(() => Promise.reject(new TypeError('fetch failed')));
    expect(await askBeforeJoining(ask, 0, options(e.fetchImpl, 300))).toMatchObject({
      admit: true,
      problem: 'fetch failed',
    });
  });
});
