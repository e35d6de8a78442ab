import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  openDispatchMetadata,
  sealDispatchMetadata,
  type DispatchMetadata,
} from '../../wire-contract/index.ts';
import { ADMIN, call, fakeLiveKit, testEnv } from '../support/edge/helpers.ts';
import { SEALED_IN_WORKERD as fixture } from '../support/sealed-metadata-fixture.ts';

afterEach(() => vi.restoreAllMocks());

// Sealing runs here, inside workerd (the edge's runtime); test/agent/call-settings.test.ts opens
// in Node what the edge seals.
const metadata: DispatchMetadata = {
  caller_identity: 'alice',
  issued_at: new Date(0).toISOString(),
  max_duration_seconds: 60,
  end_mode: 'leave',
  instructions: 'INTERNAL: offer refund up to $500',
};
const secret = testEnv.LIVEKIT_API_SECRET;

describe('sealed dispatch metadata (AES-256-GCM, key from the LiveKit API secret)', () => {
  it('round-trips in workerd, and the envelope shows nothing of what it carries', async () => {
    const sealed = await sealDispatchMetadata(metadata, 'room-a', secret);
    const envelope = JSON.parse(sealed) as { v: number; sealed: string };
    expect(Object.keys(envelope).sort()).toEqual(['sealed', 'v']);
    expect(envelope.v).toBe(1);
    expect(sealed).not.toMatch(/refund|INTERNAL|alice|caller_identity|leave/);
    expect(await openDispatchMetadata(sealed, 'room-a', secret)).toEqual({
      ok: true,
      metadata,
    });
  });

  it('uses a fresh IV each time: the same metadata never seals to the same bytes', async () => {
    const a = await sealDispatchMetadata(metadata, 'room-a', secret);
    const b = await sealDispatchMetadata(metadata, 'room-a', secret);
    expect(a).not.toBe(b);
  });

  it('cannot be opened in another room, with another secret, or after tampering', async () => {
    const sealed = await sealDispatchMetadata(metadata, 'room-a', secret);
    const { sealed: blob } = JSON.parse(sealed) as { sealed: string };
    const flipped = blob.slice(0, 20) + (blob[20] === 'A' ? 'B' : 'A') + blob.slice(21);
    const tampered = JSON.stringify({ v: 1, sealed: flipped });
    for (const [raw, room, key] of [
      [sealed, 'room-b', secret],
      [sealed, 'room-a', 'another-secret-another-secret'],
      [tampered, 'room-a', secret],
    ] as const)
      expect(await openDispatchMetadata(raw, room, key)).toEqual({
        ok: false,
        problem: 'cannot_open',
      });
  });

  it.each([
    ['plain JSON metadata', JSON.stringify(metadata)],
    ['not JSON', 'refund'],
    ['an unknown version', JSON.stringify({ v: 2, sealed: 'AAAA' })],
    ['a blob too short to hold an IV and a tag', JSON.stringify({ v: 1, sealed: 'AAAA' })],
  ])('calls %s not sealed', async (_name, raw) => {
    expect(await openDispatchMetadata(raw, 'room-a', secret)).toEqual({
      ok: false,
      problem: 'not_sealed',
    });
  });
});

describe('the dispatch endpoint seals too', () => {
  it('sends LiveKit the metadata sealed for the room, which opens to what the backend set', async () => {
    const room = `sip-sealed-${crypto.randomUUID().slice(0, 8)}`;
    const lk = fakeLiveKit({
      ListRooms: (b) => Response.json({ rooms: [{ name: b.names[0], sid: 'RM_s' }] }),
      ListDispatch: () => Response.json({ agentDispatches: [] }),
      CreateDispatch: (b) => Response.json({ id: 'AD_s', agentName: b.agentName, room: b.room }),
    });
    const res = await call(`/calls/${room}/dispatch`, {
      headers: ADMIN,
      json: { metadata: { instructions: 'INTERNAL: offer refund up to $500' } },
    });
    expect(res.status).toBe(201);
    const [created] = lk.bodiesOf('CreateDispatch');
    expect(created!.metadata).not.toContain('refund');
    const opened = await openDispatchMetadata(created!.metadata, room, secret);
    expect(opened).toMatchObject({
      ok: true,
      metadata: { instructions: 'INTERNAL: offer refund up to $500', end_mode: 'end_for_all' },
    });
  });
});

describe('the fixture the agent test opens in Node', () => {
  it('was sealed by this code in workerd, and still opens here', async () => {
    expect(await openDispatchMetadata(fixture.envelope, fixture.room, fixture.secret)).toEqual({
      ok: true,
      metadata: fixture.metadata,
    });
  });
});
