import { DisconnectReason } from '@livekit/rtc-node';
import { describe, expect, it } from 'vitest';
import { CallClient } from '../support/call-client.ts';
import { EXITS_NOT_LINGERS_MS, waitFor } from '../support/processes.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { pidAlive } from '../support/system.ts';
import { END_REASONS } from '../../wire-contract/index.ts';

const system = systemForThisFile('call-endings tests');

async function caller(
  body: Record<string, unknown> = {},
  auth = 'Bearer none',
): Promise<CallClient> {
  const client = new CallClient();
  system.callers.push(client);
  // Anonymous callers send no credential at all; backends use the app key.
  await client.join(system.edge.url, auth === 'Bearer none' ? '' : auth, body);
  return client;
}
const appKey = () => `Bearer ${system.edge.appKey}`;
const greeted = (c: CallClient) =>
  c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
const jobExit = async (room: string, timeoutMs = 30_000) => {
  const marker = await waitFor(`hooks of ${room}`, async () => system.hookMarker(room, 'ran'), {
    timeoutMs,
  });
  await waitFor(`job process ${marker.pid} exit`, async () => !pidAlive(marker.pid), {
    timeoutMs,
    intervalMs: 20,
  });
  return { marker, exitedAt: Date.now() };
};

describe.skipIf(system.skipped)('every way a call ends, against the real LiveKit server', () => {
  it('a token from the edge dispatches the agent, which joins and greets', async () => {
    const c = await caller();
    expect(c.roomName).toMatch(/^call-/);
    const joined = await c.waitForEvent(
      'participant-joined',
      (d) => d.identity.startsWith('agent-'),
      30_000,
    );
    expect(joined).toBeTruthy();
    await greeted(c);
    const call = await system.call(c.roomName);
    expect(call.status).toBe('open');
    await waitFor('ledger sees the agent join', async () =>
      (await system.call(c.roomName)).participants.some((p: any) => p.kind === 'AGENT'),
    );
    await c.leave();
  });

  it('goodbye → end_call → the goodbye arrives, then the room is deleted for everyone; ledger agent_end_call with transcript', async () => {
    const c = await caller();
    await greeted(c);
    await c.say('Thanks, that is all. Goodbye!');
    const reason = await c.waitForDisconnect(30_000);
    expect(reason).toBe(DisconnectReason.ROOM_DELETED);
    const goodbye = await c.waitForEvent('transcription-chunk', (d) =>
      /Goodbye, take care/.test(d.text),
    );
    const disconnected = c.events.find((e) => e.kind === 'disconnected')!;
    expect(goodbye.at).toBeLessThanOrEqual(disconnected.at);
    const notice = c.events.find((e) => e.kind === 'end-notice')!;
    expect(notice.detail).toEqual({ reason: 'agent_end_call' });
    expect(await system.roomGone(c.roomName)).toBe(true);
    const call = await system.reportedCall(c.roomName);
    expect(call).toMatchObject({
      status: 'ended',
      end_reason: 'agent_end_call',
      ended_by: 'agent',
    });
    const texts = call.report.transcript.map((t: any) => `${t.role}: ${t.text}`);
    expect(texts).toContain('user: Thanks, that is all. Goodbye!');
    expect(texts).toContain('assistant: Goodbye, take care!');
    expect(call.report.usage.llm_prompt_tokens).toBeGreaterThan(0);
    expect(system.hookMarker(c.roomName, 'ran')!.reason).toBe('agent_end_call');
  });

  it('mode leave: the agent says goodbye and leaves; the caller and the room stay', async () => {
    const c = await caller(
      {
        participant_identity: `leave-${Date.now()}`,
        room_config: { agents: [{ metadata: JSON.stringify({ end_mode: 'leave' }) }] },
      },
      appKey(),
    );
    await greeted(c);
    await c.say('Goodbye!');
    await c.waitForEvent('participant-left', (d) => d.identity.startsWith('agent-'), 30_000);
    expect(c.room.isConnected).toBe(true);
    expect(await system.roomExists(c.roomName)).toBe(true);
    const call = await system.reportedCall(c.roomName);
    expect(call.report.end_reason).toBe('agent_leave');
    expect(call.end_reason).toBe('agent_leave');
    await c.leave();
  });

  it('max duration: the caller hears the whole time-limit goodbye, then the room is deleted for everyone; ledger max_duration', async () => {
    const goodbye = END_REASONS.max_duration.goodbye!;
    const c = new CallClient();
    system.callers.push(c);
    c.watchAgentAudio();
    await c.join(system.edge.url, appKey(), {
      participant_identity: `maxdur-${Date.now()}`,
      // Shorter than the default warning (60 s): no warning, only the end and its goodbye.
      room_config: { agents: [{ metadata: JSON.stringify({ max_duration_seconds: 8 }) }] },
    });
    await greeted(c);
    expect(await c.waitForDisconnect(30_000)).toBe(DisconnectReason.ROOM_DELETED);
    const disconnected = c.events.find((e) => e.kind === 'disconnected')!;
    const notice = c.events.find((e) => e.kind === 'end-notice')!;
    expect(notice.detail).toEqual({ reason: 'max_duration' });
    // The goodbye's caption stream closed in full before the room went...
    const caption = c.events.find(
      (e) => e.kind === 'transcription' && (e.detail as { text: string }).text.trim() === goodbye,
    );
    expect(caption, `the caption "${goodbye}"`).toBeDefined();
    expect(caption!.at).toBeLessThanOrEqual(disconnected.at);
    // ...and it was sound: the agent's audio started again after the end notice.
    expect(
      c.events.some(
        (e) => e.kind === 'agent-audio' && e.at >= notice.at && e.at <= disconnected.at,
      ),
    ).toBe(true);
    expect(await system.roomGone(c.roomName)).toBe(true);
    const call = await system.reportedCall(c.roomName);
    expect(call).toMatchObject({ end_reason: 'max_duration', ended_by: 'system' });
    expect(call.report.transcript.map((t: any) => `${t.role}: ${t.text}`)).toContain(
      `assistant: ${goodbye}`,
    );
  });

  it('POST /calls/:room/end deletes the room; the job ends and its hooks run; a second call changes nothing', async () => {
    const c = await caller();
    await greeted(c);
    const end = () =>
      fetch(`${system.edge.url}/calls/${c.roomName}/end`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${c.participantToken}`,
        },
        body: JSON.stringify({ mode: 'end_for_all', reason: 'user tapped hang up for all' }),
      });
    const first = await end();
    expect(first.status).toBe(200);
    expect(await c.waitForDisconnect()).toBe(DisconnectReason.ROOM_DELETED);
    expect(await system.roomGone(c.roomName)).toBe(true);
    const { marker } = await jobExit(c.roomName);
    expect(marker.reason).toBe('room_deleted');
    const firstView = ((await first.json()) as any).call;
    expect(firstView).toMatchObject({ end_reason: 'api_end_call', ended_by: 'api' });
    const second = await end();
    expect(second.status).toBe(200);
    const body = (await second.json()) as any;
    expect(body.already_ended).toBe(true);
    expect(body.call.ended_at).toBe(firstView.ended_at);
    const after = await system.reportedCall(c.roomName);
    expect(after.end_reason).toBe('api_end_call');
  });

  it('the user hangs up: the agent job exits promptly (stock lingers until the room closes), the report says participant_left', async () => {
    const c = await caller();
    await greeted(c);
    const hungUpAt = Date.now();
    await c.leave();
    const { exitedAt, marker } = await jobExit(c.roomName, 20_000);
    expect(marker.reason).toBe('participant_left');
    console.log(`hang-up → job exit: ${exitedAt - hungUpAt} ms`);
    expect(exitedAt - hungUpAt).toBeLessThan(EXITS_NOT_LINGERS_MS);
    const call = await system.reportedCall(c.roomName);
    expect(call.report.end_reason).toBe('participant_left');
  });

  it('the user hangs up while the agent is still preparing its greeting: the job still exits promptly', async () => {
    const c = await caller();
    await c.waitForEvent('participant-joined', (d) => d.identity.startsWith('agent-'), 30_000);
    await waitFor('agent hooks registered', async () =>
      system.hookMarker(c.roomName, 'registered'),
    );
    const hungUpAt = Date.now();
    await c.leave();
    const { exitedAt, marker } = await jobExit(c.roomName, 20_000);
    expect(marker.reason).toBe('participant_left');
    // Stock agents-js 1.9 can hold this job ~60 s in AgentSession.close(); the exit grace bounds it.
    expect(exitedAt - hungUpAt).toBeLessThan(EXITS_NOT_LINGERS_MS);
  });
});
