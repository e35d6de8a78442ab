import { AccessToken } from 'livekit-server-sdk';
import { describe, expect, it } from 'vitest';
import { CallClient } from '../support/call-client.ts';
import { DEV_KEY, DEV_SECRET } from '../support/livekit-server.ts';
import { SPEECH_SAMPLE_RATE } from '../support/speech.ts';
import { waitFor } from '../support/processes.ts';
import { systemForThisFile } from '../support/e2e-system.ts';

/** Who the caller is when a dispatch names none (the edge's own POST /calls/:room/dispatch). */
const system = systemForThisFile('caller-kind tests');

const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}`;

/** Joins straight to LiveKit (no edge token, so no dispatch) as a participant of this kind. */
async function joinAs(room: string, identity: string, kind?: string): Promise<CallClient> {
  const at = new AccessToken(DEV_KEY, DEV_SECRET, { identity });
  if (kind) at.kind = kind;
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true });
  const client = new CallClient();
  system.callers.push(client);
  await client.connect(system.livekit.url, await at.toJwt(), room, identity);
  return client;
}

describe.skipIf(system.skipped)('the caller is a person, not a stream', () => {
  it('an ingress participant in the room first is not taken as the caller: its leaving ends nothing', async () => {
    const room = unique('stream-first');
    const stream = await joinAs(room, 'stream-in', 'ingress');
    const res = await fetch(`${system.edge.url}/calls/${room}/dispatch`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${system.edge.adminKey}`,
        'content-type': 'application/json',
      },
      body: '{}',
    });
    expect(res.status).toBeLessThan(300);
    await waitFor(
      'agent in the room',
      async () => (await system.rooms.listParticipants(room)).some((p) => Number(p.kind) === 4),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const person = await joinAs(room, 'person');
    await person.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
    await stream.leave();
    await new Promise((r) => setTimeout(r, 1_500));
    await person.say('Are you still there?');
    await person.waitForEvent(
      'transcription',
      (d) => d.text === 'You said: Are you still there?',
      30_000,
    );
    expect(system.hookMarker(room, 'ran')).toBeUndefined();
    await person.leave();
    expect((await system.reportedCall(room)).end_reason).toBe('participant_left');
  });
});

describe.skipIf(system.skipped)('a caller no agent was dispatched to', () => {
  // bench:capacity once hung for good on such a caller: publishing waited for an agent to subscribe
  // with no bound, where the caller should have counted as failed ("no agent").
  it('publishing the microphone gives up at its bound, saying no agent subscribed, instead of waiting forever', async () => {
    const caller = await joinAs(unique('no-agent'), 'alone');
    await expect(caller.publishMicrophone(SPEECH_SAMPLE_RATE, 1_000)).rejects.toThrow(
      /no agent subscribed to the microphone within 1000 ms/,
    );
    expect(caller.events.map((e) => e.kind)).not.toContain('microphone-subscribed');
  }, 15_000);
});
