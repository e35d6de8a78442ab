import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TokenVerifier } from 'livekit-server-sdk';
import {
  ADMIN,
  APP,
  bearerFor,
  call,
  fakeLiveKit,
  issueToken,
  callRow,
  testEnv,
  twirpError,
  type ApiResponse,
  type EndCallResponse,
  type TokenResponse,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

const anyJson = fc.jsonValue({ maxDepth: 4 });
const tokenish = fc.record(
  {
    room_name: fc.oneof(fc.string(), fc.integer()),
    participant_identity: fc.oneof(fc.string(), fc.constant(null)),
    participant_name: fc.string({ maxLength: 200 }),
    participant_attributes: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())),
    room_config: fc.oneof(
      anyJson,
      fc.record({
        agents: fc.array(
          fc.record({ agent_name: fc.string(), metadata: fc.string() }, { requiredKeys: [] }),
        ),
      }),
    ),
    extra: anyJson,
  },
  { requiredKeys: [] },
);
const headers = fc.record(
  {
    authorization: fc.oneof(
      fc.string(),
      fc.constant('Bearer '),
      fc.string().map((s) => `Bearer ${s}`),
      fc.constant('Bearer a.b.c'),
    ),
    'content-type': fc.oneof(fc.constant('application/json'), fc.string()),
  },
  { requiredKeys: [] },
);

/** Never a 500 or a non-JSON error; 502/503 only when LiveKit itself failed (`upstream`). */
function expectJsonError(res: ApiResponse, { upstream = false } = {}) {
  if (upstream && res.status >= 500) expect([502, 503]).toContain(res.status);
  else expect(res.status).toBeLessThan(500);
  if (res.status >= 400) expect(res.data).toMatchObject({ error: { code: expect.any(String) } });
}

describe('properties: no input makes the edge answer 5xx or a non-JSON error', () => {
  it('POST /token with arbitrary bodies and headers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(tokenish, anyJson),
        headers,
        fc.boolean(),
        async (body, hdrs, authed) => {
          // Its own identity each run (and, from the helper, its own address): no run meets a 429.
          const auth = await bearerFor(`prop-${crypto.randomUUID()}`);
          const res = await call('/token', {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...hdrs, ...(authed ? auth : {}) },
            body: JSON.stringify(body),
          });
          expectJsonError(res);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('POST /calls/:room/end with arbitrary bodies, headers, room names and LiveKit failures', async () => {
    const { room_name } = await issueToken('prop-owner');
    await fc.assert(
      fc.asyncProperty(
        anyJson,
        headers,
        fc.oneof(fc.constant(room_name), fc.string({ minLength: 1 })),
        fc.boolean(),
        liveKitReply,
        async (body, hdrs, room, admin, reply) => {
          vi.restoreAllMocks();
          fakeLiveKit({ DeleteRoom: reply, ListParticipants: reply });
          const res = await call(
            `/calls/${encodeURIComponent(room)}/end`,
            {
              method: 'POST',
              headers: { 'content-type': 'application/json', ...hdrs, ...(admin ? ADMIN : {}) },
              body: JSON.stringify(body),
            },
            { LIVEKIT_TIMEOUT_MS: '100' },
          );
          expectJsonError(res, { upstream: true });
        },
      ),
      { numRuns: 100 },
    );
  });
});

// LiveKit answering an end: fine, "not found", a server error, or not at all.
const liveKitReply = fc.constantFrom<() => Response | 'hang'>(
  () => Response.json({}),
  () => twirpError(404, 'not_found', 'requested room does not exist'),
  () => twirpError(500, 'internal', 'boom'),
  () => twirpError(503, 'unavailable', 'overloaded'),
  () => 'hang',
);

describe('properties: what must hold for valid input', () => {
  const attributes = fc.dictionary(
    fc.stringMatching(/^[a-z][a-z0-9_]{0,20}$/),
    fc.string({ maxLength: 50 }),
    { maxKeys: 5 },
  );
  const validRequest = fc.record(
    {
      room_name: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,60}$/),
      participant_identity: fc.string({ minLength: 1, maxLength: 60 }),
      participant_name: fc.string({ maxLength: 60 }),
      participant_attributes: attributes,
    },
    { requiredKeys: ['participant_identity'] },
  );

  it('every valid backend /token request gets 201 and a token whose grants say what was asked', async () => {
    await fc.assert(
      fc.asyncProperty(validRequest, async (req) => {
        const body = {
          ...req,
          room_name: req.room_name && `${req.room_name}-${crypto.randomUUID().slice(0, 8)}`,
        };
        const res = await call<TokenResponse>('/token', { headers: APP, json: body });
        expect(res.status).toBe(201);
        const grants = await new TokenVerifier(
          testEnv.LIVEKIT_API_KEY,
          testEnv.LIVEKIT_API_SECRET,
        ).verify(res.data.participant_token);
        expect(grants.sub).toBe(body.participant_identity);
        expect(grants.video?.room).toBe(body.room_name ?? res.data.room_name);
        expect(grants.video?.roomJoin).toBe(true);
        expect(grants.video?.roomAdmin).toBeFalsy();
        if (body.participant_name) expect(grants.name).toBe(body.participant_name);
        expect(grants.attributes ?? {}).toEqual(body.participant_attributes ?? {});
        expect(grants.roomConfig?.agents?.[0]?.agentName).toBe(testEnv.AGENT_NAME);
      }),
      { numRuns: 60 },
    );
  });

  it('every end on an open call ends it exactly once, whatever LiveKit answers along the way', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(liveKitReply, { minLength: 1, maxLength: 5 }), async (replies) => {
        const { room_name } = await issueToken(`once-${crypto.randomUUID()}`);
        let succeeded = 0;
        for (const reply of replies) {
          vi.restoreAllMocks();
          fakeLiveKit({ DeleteRoom: reply });
          const res = await call<EndCallResponse>(
            `/calls/${room_name}/end`,
            { headers: ADMIN, json: { mode: 'end_for_all' } },
            { LIVEKIT_TIMEOUT_MS: '100' },
          );
          if (res.status === 200 && !res.data.already_ended) succeeded += 1;
          else if (res.status === 200) expect(succeeded).toBe(1);
          else expect([502, 503]).toContain(res.status);
          const row = await callRow(room_name);
          expect(row!.status).toBe(succeeded ? 'ended' : 'open');
        }
        expect(succeeded).toBeLessThanOrEqual(1);
      }),
      { numRuns: 40 },
    );
    // Every end asks LiveKit, even after the call ended (a revived room): hangs cost 350 ms each.
  }, 60_000);
});
