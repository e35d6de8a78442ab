import { decodeJwt } from 'jose';
import { TokenVerifier } from 'livekit-server-sdk';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDispatchMetadata } from '../../wire-contract/index.ts';
import { callReportFor } from '../support/call-report-fixture.ts';
import {
  bearerFor,
  call,
  expectError,
  callRow,
  signAsLiveKit,
  testEnv,
  type ReportResponse,
  type TokenResponse,
  type WebhookResponse,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

// Mid-rotation: the edge mints with a new pair while agents, LiveKit's webhooks and tokens already
// handed out still carry the pair the edge held before (the test bindings' pair).
const PREVIOUS = { key: testEnv.LIVEKIT_API_KEY, secret: testEnv.LIVEKIT_API_SECRET };
const CURRENT = { key: 'rotatedkey', secret: 'rotated-secret-rotated-secret-0123' };
const STRANGER = { key: 'strangerkey', secret: 'stranger-secret-stranger-secret-0' };
const ROTATING = {
  LIVEKIT_API_KEY: CURRENT.key,
  LIVEKIT_API_SECRET: CURRENT.secret,
  LIVEKIT_PREVIOUS_API_KEY: PREVIOUS.key,
  LIVEKIT_PREVIOUS_API_SECRET: PREVIOUS.secret,
};
type Pair = typeof CURRENT;

async function issue(sub: string): Promise<TokenResponse> {
  const res = await call<TokenResponse>(
    '/token',
    { headers: await bearerFor(sub), json: {} },
    ROTATING,
  );
  expect(res.status).toBe(201);
  return res.data;
}

async function postSigned<T>(path: string, body: string, pair: Pair, type = 'application/json') {
  const authorization = await signAsLiveKit(body, pair);
  return call<T>(
    path,
    { method: 'POST', headers: { 'content-type': type, Authorization: authorization }, body },
    ROTATING,
  );
}

const webhook = (room: string, pair: Pair) =>
  postSigned<WebhookResponse>(
    '/livekit/webhook',
    JSON.stringify({
      event: 'room_started',
      room: { name: room, sid: `RM_${room}` },
      id: `EV_${room}`,
      createdAt: String(Math.floor(Date.now() / 1000)),
    }),
    pair,
    'application/webhook+json',
  );

const admission = (room: string, pair: Pair) =>
  postSigned<{ admit: boolean }>(
    `/calls/${room}/admit`,
    JSON.stringify({ room, room_sid: `RM_${room}`, job_id: `AJ_${room}` }),
    pair,
  );

const report = (room: string, pair: Pair) =>
  postSigned<ReportResponse>(`/calls/${room}/report`, JSON.stringify(callReportFor(room)), pair);

async function participantToken(identity: string, room: string, pair: Pair) {
  const { AccessToken } = await import('livekit-server-sdk');
  const at = new AccessToken(pair.key, pair.secret, { identity, ttl: 600 });
  at.addGrant({ roomJoin: true, room });
  return at.toJwt();
}

const readAsParticipant = async (room: string, token: string) =>
  call<{ status: string }>(
    `/calls/${room}`,
    { headers: { Authorization: `Bearer ${token}` } },
    ROTATING,
  );

describe('a LiveKit key rotation loses nothing: the previous pair is accepted beside the current one', () => {
  it('applies a webhook LiveKit still signs with the previous pair', async () => {
    const { room_name } = await issue('rot-webhook');
    const res = await webhook(room_name, PREVIOUS);
    expect(res.status).toBe(200);
    expect(res.data.outcome).toBe('applied');
    expect((await callRow(room_name))!.started_at).not.toBeNull();
  });

  it('admits an agent that still signs with the previous pair', async () => {
    const { room_name } = await issue('rot-admit');
    const res = await admission(room_name, PREVIOUS);
    expect(res).toMatchObject({ status: 200, data: { admit: true } });
  });

  it("accepts an agent's report signed with the previous pair, and closes the call", async () => {
    const { room_name } = await issue('rot-report');
    const res = await report(room_name, PREVIOUS);
    expect(res).toMatchObject({ status: 201, data: { accepted: true } });
    expect((await callRow(room_name))!.status).toBe('ended');
  });

  it('takes a participant token minted with the previous pair as the credential for its call', async () => {
    const { room_name, participant_identity } = await issue('rot-participant');
    const token = await participantToken(participant_identity, room_name, PREVIOUS);
    const res = await readAsParticipant(room_name, token);
    expect(res.status).toBe(200);
    expect(res.data.status).toBe('open');
  });

  it('accepts the current pair everywhere too', async () => {
    const { room_name, participant_identity } = await issue('rot-current');
    expect((await webhook(room_name, CURRENT)).status).toBe(200);
    expect((await admission(room_name, CURRENT)).data.admit).toBe(true);
    const token = await participantToken(participant_identity, room_name, CURRENT);
    expect((await readAsParticipant(room_name, token)).status).toBe(200);
    expect((await report(room_name, CURRENT)).status).toBe(201);
  });

  it('mints every token with the current pair only', async () => {
    const { participant_token } = await issue('rot-mint');
    expect(decodeJwt(participant_token).iss).toBe(CURRENT.key);
    await expect(
      new TokenVerifier(CURRENT.key, CURRENT.secret).verify(participant_token),
    ).resolves.toBeTruthy();
  });

  it("seals the agent's call settings with the previous secret, which every agent Machine can open", async () => {
    const { participant_token, room_name } = await issue('rot-seal');
    const claims = await new TokenVerifier(CURRENT.key, CURRENT.secret).verify(participant_token);
    const sealed = claims.roomConfig!.agents![0]!.metadata;
    // An agent not yet redeployed holds only the old pair; one on the new pair keeps the old secret.
    const notYetRedeployed = await openDispatchMetadata(sealed, room_name, PREVIOUS.secret);
    expect(notYetRedeployed).toMatchObject({ ok: true, metadata: { caller_identity: 'rot-seal' } });
    const redeployed = await openDispatchMetadata(sealed, room_name, [
      CURRENT.secret,
      PREVIOUS.secret,
    ]);
    expect(redeployed).toEqual(notYetRedeployed);
    // Once the previous pair is dropped, the new secret seals, and the old one no longer opens it.
    const after = await call<TokenResponse>(
      '/token',
      { headers: await bearerFor('rot-seal-after'), json: {} },
      { LIVEKIT_API_KEY: CURRENT.key, LIVEKIT_API_SECRET: CURRENT.secret },
    );
    expect(after.status).toBe(201);
    const afterClaims = await new TokenVerifier(CURRENT.key, CURRENT.secret).verify(
      after.data.participant_token,
    );
    const afterSealed = afterClaims.roomConfig!.agents![0]!.metadata;
    expect(
      await openDispatchMetadata(afterSealed, after.data.room_name, CURRENT.secret),
    ).toMatchObject({ ok: true });
    expect(await openDispatchMetadata(afterSealed, after.data.room_name, PREVIOUS.secret)).toEqual({
      ok: false,
      problem: 'cannot_open',
    });
  });

  describe('refuses a pair it does not hold, and pairs mixed across the rotation', () => {
    const MIXED = { key: CURRENT.key, secret: PREVIOUS.secret };
    it.each([
      ['an unknown pair', STRANGER],
      ["the current key with the previous pair's secret", MIXED],
    ])('%s: webhook, admission, report and participant token', async (_name, pair) => {
      const { room_name, participant_identity } = await issue(`rot-refuse-${pair.key}`);
      expectError(await webhook(room_name, pair), 401, 'invalid_signature');
      expectError(await admission(room_name, pair), 401, 'invalid_signature');
      expectError(await report(room_name, pair), 401, 'invalid_signature');
      const token = await participantToken(participant_identity, room_name, pair);
      expectError(await readAsParticipant(room_name, token), 401, 'invalid_credential');
      expect((await callRow(room_name))!).toMatchObject({ status: 'open', started_at: null });
    });
  });

  it('refuses the previous pair once it is no longer configured', async () => {
    const { room_name } = await issue('rot-done');
    const after = { LIVEKIT_API_KEY: CURRENT.key, LIVEKIT_API_SECRET: CURRENT.secret };
    const body = JSON.stringify({ event: 'room_started', room: { name: room_name }, id: 'EV_x' });
    const res = await call(
      '/livekit/webhook',
      {
        method: 'POST',
        headers: {
          'content-type': 'application/webhook+json',
          Authorization: await signAsLiveKit(body, PREVIOUS),
        },
        body,
      },
      after,
    );
    expectError(res, 401, 'invalid_signature');
  });
});

describe('the previous pair in the configuration', () => {
  it.each([
    ['only its key', { LIVEKIT_PREVIOUS_API_KEY: PREVIOUS.key }],
    ['only its secret', { LIVEKIT_PREVIOUS_API_SECRET: PREVIOUS.secret }],
  ])('is misconfigured with %s, naming both variables', async (_name, half) => {
    const res = await call('/healthz', {}, half);
    const { message } = expectError(res, 503, 'misconfigured');
    expect(message).toContain('LIVEKIT_PREVIOUS_API_KEY');
    expect(message).toContain('LIVEKIT_PREVIOUS_API_SECRET');
    expect(message).not.toContain(PREVIOUS.secret);
  });

  it('is misconfigured when its key is the current key (LiveKit tells pairs apart by key)', async () => {
    const res = await call(
      '/healthz',
      {},
      {
        LIVEKIT_PREVIOUS_API_KEY: testEnv.LIVEKIT_API_KEY,
        LIVEKIT_PREVIOUS_API_SECRET: 'x'.repeat(32),
      },
    );
    expect(expectError(res, 503, 'misconfigured').message).toContain('LIVEKIT_PREVIOUS_API_KEY');
  });
});
