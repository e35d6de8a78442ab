import { afterEach, describe, expect, it, vi } from 'vitest';
import { recordIssuedToken } from '../../edge/ledger/issued-tokens.ts';
import {
  APP,
  bearerFor,
  call,
  expectError,
  callRow,
  seedCall,
  testEnv,
  type ApiResponse,
  type TokenResponse,
  atCall,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

// Anonymous callers are allowed only against a loopback LiveKit (or with the loud opt-in).
const ANONYMOUS = {
  AUTH_ALLOW_ANONYMOUS: 'true',
  LIVEKIT_URL: 'ws://127.0.0.1:7880',
  MAX_OPEN_CALLS_PER_CALLER: undefined,
};

// The shipped default, whatever the suite's bindings set (undefined: the variable is unset).
const DEFAULT_CAP = { MAX_OPEN_CALLS_PER_CALLER: undefined };

const fresh = (who: string) => `${who}-${crypto.randomUUID().slice(0, 8)}`;
const tokenFor = async (sub: string, overrides: Record<string, unknown> = {}) =>
  call<TokenResponse>(
    '/token',
    { headers: await bearerFor(sub), json: {} },
    { ...DEFAULT_CAP, ...overrides },
  );

function expectCapped(res: ApiResponse<unknown>, cap: number) {
  const error = expectError(res, 429, 'too_many_open_calls');
  expect(error.message).toContain(`${cap} open calls`);
  const retryAfter = Number(res.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect((error as { retry_after_seconds?: number }).retry_after_seconds).toBe(retryAfter);
}

describe('open calls per caller (MAX_OPEN_CALLS_PER_CALLER, default 3)', () => {
  it('lets an end user hold 3 open calls; the 4th token is 429 too_many_open_calls naming the cap, with Retry-After', async () => {
    const sub = fresh('holder');
    for (let i = 0; i < 3; i++) expect((await tokenFor(sub)).status).toBe(201);
    expectCapped(await tokenFor(sub), 3);
    // Another user is not affected.
    expect((await tokenFor(fresh('neighbour'))).status).toBe(201);
  });

  it('frees a place when one of the calls ends', async () => {
    const sub = fresh('ender');
    const rooms = [];
    for (let i = 0; i < 3; i++) rooms.push((await tokenFor(sub)).data.room_name);
    expectCapped(await tokenFor(sub), 3);
    await seedCall.ended(rooms[1]!);
    expect((await tokenFor(sub)).status).toBe(201);
  });

  it('counts a call that never started only while its last token can still be joined', async () => {
    const sub = fresh('prefetcher');
    const rooms = [];
    for (let i = 0; i < 3; i++) rooms.push((await tokenFor(sub)).data.room_name);
    await seedCall.unused(rooms[0]!, Date.now() - 1, { archiveOnly: true });
    expect((await tokenFor(sub)).status).toBe(201);
  });

  it('keeps counting a call that started, after its token expired', async () => {
    const sub = fresh('talker');
    const rooms = [];
    for (let i = 0; i < 3; i++) rooms.push((await tokenFor(sub)).data.room_name);
    for (const room of rooms)
      await atCall(
        room,
        'UPDATE calls SET started_at = ?2, join_by = ?2 WHERE room = ?1',
        room,
        Date.now() - 60_000,
      );
    expectCapped(await tokenFor(sub), 3);
  });

  it('does not let a burst of concurrent requests overshoot the cap', async () => {
    const sub = fresh('burst');
    const headers = await bearerFor(sub);
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        call<TokenResponse>('/token', { headers, json: {} }, DEFAULT_CAP),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([...Array(3).fill(201), ...Array(7).fill(429)]);
    for (const r of results.filter((r) => r.status === 429)) expectCapped(r, 3);
    // A refused request left no call behind: the ledger holds exactly the three granted ones.
    const held = await testEnv.LEDGER.prepare(
      'SELECT COUNT(*) AS n FROM calls WHERE caller_key = ?',
    )
      .bind(`id:${sub}`)
      .first<{ n: number }>();
    expect(held!.n).toBe(3);
  });

  it('takes the cap from MAX_OPEN_CALLS_PER_CALLER, and 0 turns it off', async () => {
    const one = fresh('one');
    const cap1 = { MAX_OPEN_CALLS_PER_CALLER: '1' };
    expect((await tokenFor(one, cap1)).status).toBe(201);
    expectCapped(await tokenFor(one, cap1), 1);
    const off = fresh('off');
    for (let i = 0; i < 5; i++)
      expect((await tokenFor(off, { MAX_OPEN_CALLS_PER_CALLER: '0' })).status).toBe(201);
  });

  it('refuses a bad MAX_OPEN_CALLS_PER_CALLER as a configuration error naming it', async () => {
    const res = await call('/healthz', {}, { MAX_OPEN_CALLS_PER_CALLER: '-1' });
    expect(expectError(res, 503, 'misconfigured').message).toContain('MAX_OPEN_CALLS_PER_CALLER');
  });

  it('caps anonymous callers per address', async () => {
    const ip = `198.18.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    const anon = () =>
      call<TokenResponse>('/token', { headers: { 'cf-connecting-ip': ip }, json: {} }, ANONYMOUS);
    for (let i = 0; i < 3; i++) expect((await anon()).status).toBe(201);
    expectCapped(await anon(), 3);
    const elsewhere = await call(
      '/token',
      { headers: { 'cf-connecting-ip': '198.51.100.99' }, json: {} },
      ANONYMOUS,
    );
    expect(elsewhere.status).toBe(201);
  });

  it('does not cap backends (they enforce their own)', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await call('/token', {
        headers: APP,
        json: { participant_identity: 'one-customer' },
      });
      expect(res.status).toBe(201);
    }
  });

  it('records who opened the call, so the cap can count it', async () => {
    const sub = fresh('keyed');
    const { data } = await tokenFor(sub);
    expect(await callRow(data.room_name)).toMatchObject({ caller_key: `id:${sub}` });
  });

  it('does not count a token for an open room the same caller is already in twice', async () => {
    const now = Date.now();
    const token = (room: string) =>
      recordIssuedToken(testEnv.LEDGER, {
        room,
        identity: 'rejoiner',
        callerKey: 'id:rejoiner',
        maxOpenCalls: 1,
        agentName: 'voice-agent',
        endMode: 'end_for_all',
        maxDurationSeconds: 60,
        now,
        joinBy: now + 600_000,
        deadlineAt: now + 660_000,
      });
    const room = fresh('room');
    await token(room);
    await expect(token(room)).resolves.toMatchObject({ outcome: 'recorded' });
    await expect(token(fresh('second-room'))).resolves.toMatchObject({ outcome: 'at_cap' });
  });
});
