import { DisconnectReason } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallClient } from '../support/call-client.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { EXITS_NOT_LINGERS_MS, waitFor } from '../support/processes.ts';
import { pidAlive } from '../support/system.ts';

/**
 * The main endings with AGENT_MODEL_MODE=realtime: the real OpenAI plugin's RealtimeModel talks
 * to the local Realtime WebSocket stand-in (test/support/openai-realtime-stand-in.ts) through its
 * baseURL; the caller types on lk.chat and hears the model's own audio.
 */
const REALTIME_AGENT = 'voice-agent-realtime';
const clients: CallClient[] = [];

const system = systemForThisFile('realtime tests', {
  edgeVars: { AGENT_ALLOWED_NAMES: `voice-agent,${REALTIME_AGENT}` },
});
beforeAll(async () => {
  if (system.skipped) return;
  await system.startAgent('agent-realtime', {
    AGENT_NAME: REALTIME_AGENT,
    AGENT_MODEL_MODE: 'realtime',
    MAX_DURATION_WARNING_SECONDS: '3',
  });
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.leave()));
});

async function caller(metadata?: Record<string, unknown>): Promise<CallClient> {
  const client = new CallClient();
  clients.push(client);
  const room = `realtime-${Date.now().toString(36)}-${clients.length}`;
  if (metadata)
    await client.join(system.edge.url, `Bearer ${system.edge.appKey}`, {
      room_name: room,
      participant_identity: `caller-${room}`,
      room_config: { agents: [{ agent_name: REALTIME_AGENT, metadata: JSON.stringify(metadata) }] },
    });
  else
    await client.join(system.edge.url, '', {
      room_config: { agents: [{ agent_name: REALTIME_AGENT }] },
    });
  await client.waitForEvent(
    'transcription',
    (d) => d.text === 'Hello! How can I help you today?',
    30_000,
  );
  return client;
}

describe.skipIf(system.skipped)('realtime model mode, against the real LiveKit server', () => {
  it('the token dispatches the realtime agent, which greets through the Realtime API', async () => {
    const c = await caller();
    expect(system.openai.realtime.connections.length).toBeGreaterThan(0);
    expect(system.openai.realtime.clientEvents).toContain('response.create');
    await c.leave();
  });

  it('goodbye → end_call: the reply on its own speech handle plays in full, then the room is deleted', async () => {
    const c = await caller();
    await c.say('Thanks, goodbye!');
    expect(await c.waitForDisconnect(30_000)).toBe(DisconnectReason.ROOM_DELETED);
    const disconnected = c.events.find((e) => e.kind === 'disconnected')!;
    const goodbye = await c.waitForEvent('transcription', (d) => d.text === 'Goodbye, take care!');
    const started = c.events.find(
      (e) =>
        e.kind === 'transcription-chunk' && /Goodbye/.test((e.detail as { text: string }).text),
    )!;
    expect(goodbye.at).toBeLessThanOrEqual(disconnected.at);
    // 19 characters at 40 ms: the room stays until the goodbye's audio has played.
    expect(disconnected.at - started.at).toBeGreaterThanOrEqual(19 * 40 - 100);
    const call = await system.reportedCall(c.roomName);
    expect(call.end_reason).toBe('agent_end_call');
    expect(call.report.transcript.at(-1)).toMatchObject({
      role: 'assistant',
      text: 'Goodbye, take care!',
    });
  });

  it('the caller hangs up: the job exits promptly, the report says participant_left', async () => {
    const c = await caller();
    const marker = await waitFor('hooks registered', async () =>
      system.hookMarker(c.roomName, 'registered'),
    );
    const hungUpAt = Date.now();
    await c.leave();
    await waitFor('job exit', async () => !pidAlive(marker.pid), {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    expect(Date.now() - hungUpAt).toBeLessThan(EXITS_NOT_LINGERS_MS);
    expect((await system.reportedCall(c.roomName)).end_reason).toBe('participant_left');
  });

  it('a short maximum duration: the spoken warning, then the end for everyone with max_duration', async () => {
    const c = await caller({ max_duration_seconds: 8 });
    const warning = await c.waitForEvent(
      'transcription',
      (d) => /seconds left/.test(d.text),
      15_000,
    );
    expect(await c.waitForDisconnect(15_000)).toBe(DisconnectReason.ROOM_DELETED);
    expect(c.events.find((e) => e.kind === 'disconnected')!.at).toBeGreaterThan(warning.at);
    expect(c.events.find((e) => e.kind === 'end-notice')!.detail).toEqual({
      reason: 'max_duration',
    });
    expect((await system.reportedCall(c.roomName)).end_reason).toBe('max_duration');
  });

  it('POST /calls/:room/end: the room goes, the job cleans up, the ledger says api_end_call', async () => {
    const c = await caller();
    expect((await system.endForAll(c)).status).toBe(200);
    expect(await c.waitForDisconnect(15_000)).toBe(DisconnectReason.ROOM_DELETED);
    const marker = await waitFor('hooks ran', async () => system.hookMarker(c.roomName, 'ran'));
    expect(marker.reason).toBe('room_deleted');
    expect((await system.reportedCall(c.roomName)).end_reason).toBe('api_end_call');
  });
});
