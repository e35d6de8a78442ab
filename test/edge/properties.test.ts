import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ADMIN, bearerFor, call, fakeLiveKit, issueToken, type ApiResponse } from './helpers.ts';

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

function expectJsonError(res: ApiResponse) {
  expect(res.status).toBeLessThan(500);
  if (res.status >= 400) expect(res.data).toMatchObject({ error: { code: expect.any(String) } });
}

describe('properties: no input makes the edge answer 5xx or a non-JSON error', () => {
  it('POST /token with arbitrary bodies and headers', async () => {
    const auth = await bearerFor('prop-user');
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(tokenish, anyJson),
        headers,
        fc.boolean(),
        async (body, hdrs, authed) => {
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

  it('POST /calls/:room/end with arbitrary bodies, headers and room names', async () => {
    const { room_name } = await issueToken('prop-owner');
    fakeLiveKit();
    await fc.assert(
      fc.asyncProperty(
        anyJson,
        headers,
        fc.oneof(fc.constant(room_name), fc.string({ minLength: 1 })),
        fc.boolean(),
        async (body, hdrs, room, admin) => {
          const res = await call(`/calls/${encodeURIComponent(room)}/end`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...hdrs, ...(admin ? ADMIN : {}) },
            body: JSON.stringify(body),
          });
          expectJsonError(res);
        },
      ),
      { numRuns: 150 },
    );
  });
});
