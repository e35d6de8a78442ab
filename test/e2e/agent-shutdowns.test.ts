import { DisconnectReason, dispose } from '@livekit/rtc-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AgentWorker } from '../support/agent-worker.ts';
import { CallClient } from '../support/call-client.ts';
import { waitFor } from '../support/processes.ts';
import { pidAlive, System } from '../support/system.ts';

/**
 * The agent's endings that stock agents-js gets wrong, against the real LiveKit server: a caller
 * who drops and comes back, a call that fails during setup, hooks registered late, and a worker
 * that agents-js shuts down itself (its drain timeout, a second Ctrl-C).
 */
const bin = inject('livekitServerBin');
const GRACE_SECONDS = 6;
const AGENTS = ['voice-agent', 'voice-agent-grace', 'voice-agent-notmp', 'voice-agent-force'];
let system: System;
const clients: CallClient[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (!bin) return;
  // LiveKit's default departure timeout (20 s): a reconnect grace only helps below it, since the
  // room closes that long after the last caller left.
  system = await new System(bin, {
    edgeVars: { AGENT_ALLOWED_NAMES: AGENTS.join(',') },
  }).start();
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.allSettled(clients.map((c) => c.leave()));
  await system?.stop();
  await dispose();
});

const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}`;

/** A token for this room and identity from the edge, as a trusted backend asks for one. */
async function backendToken(room: string, identity: string, agentName = 'voice-agent') {
  const res = await fetch(`${system.edge.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${system.edge.appKey}` },
    body: JSON.stringify({
      room_name: room,
      participant_identity: identity,
      room_config: { agents: [{ agent_name: agentName }] },
    }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { server_url: string; participant_token: string };
}

async function callerIn(room: string, identity: string, agentName?: string): Promise<CallClient> {
  const { server_url, participant_token } = await backendToken(room, identity, agentName);
  const client = new CallClient();
  clients.push(client);
  await client.connect(server_url, participant_token, room, identity);
  return client;
}

/** A caller in its own process, joined and greeted; SIGKILL it to drop it without a leave. */
async function droppableCaller(room: string, identity: string, agentName: string) {
  const { server_url, participant_token } = await backendToken(room, identity, agentName);
  const child = spawn(
    process.execPath,
    [resolve(import.meta.dirname, '../support/caller-process.ts'), server_url, participant_token],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.push(child);
  await new Promise<void>((ok) =>
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('joined') && ok()),
  );
  await waitFor('agent registered its hooks', async () => system.hookMarker(room, 'registered'), {
    timeoutMs: 30_000,
  });
  // The job starts before its agent joins the room: drop the caller only once the agent is in.
  await waitFor(
    'agent in the room',
    async () => (await system.rooms.listParticipants(room)).some((p) => Number(p.kind) === 4),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  return child;
}

describe.skipIf(!bin)('endings agents-js gets wrong, against the real LiveKit server', () => {
  describe('a caller who drops without leaving', () => {
    let worker: AgentWorker;
    beforeAll(async () => {
      worker = await system.startAgent('agent-grace', {
        AGENT_NAME: 'voice-agent-grace',
        RECONNECT_GRACE_SECONDS: String(GRACE_SECONDS),
      });
    });
    afterAll(() => worker?.stop('SIGKILL'));

    it('comes back with the same identity within the grace: the same agent goes on with the call', async () => {
      const room = unique('grace-back');
      const phone = await droppableCaller(room, 'mobile-user', 'voice-agent-grace');
      const agentPid = system.hookMarker(room, 'registered')!.pid;
      phone.kill('SIGKILL');
      const back = await callerIn(room, 'mobile-user', 'voice-agent-grace');
      await back.say('Are you still there?');
      await back.waitForEvent(
        'transcription',
        (d) => d.text === 'You said: Are you still there?',
        30_000,
      );
      expect(pidAlive(agentPid)).toBe(true);
      expect(system.hookMarker(room, 'ran')).toBeUndefined();
      expect((await system.call(room)).status).toBe('open');
      await back.leave();
      expect((await system.reportedCall(room)).end_reason).toBe('participant_left');
    });

    it('does not come back: the call ends participant_left, a full grace after LiveKit saw them go', async () => {
      const room = unique('grace-gone');
      const phone = await droppableCaller(room, 'gone-user', 'voice-agent-grace');
      phone.kill('SIGKILL');
      const call = await waitFor(
        'report',
        async () => {
          const view = await system.call(room);
          return view.report ? view : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      expect(call.end_reason).toBe('participant_left');
      const leftAt = Date.parse(
        call.participants.find((p: { identity: string }) => p.identity === 'gone-user').left_at,
      );
      const ended = system.hookMarker(room, 'ran')!;
      expect(ended.at - leftAt).toBeGreaterThanOrEqual(GRACE_SECONDS * 1000 - 1000);
    });
  });

  it('a call that fails during setup: the caller is not left alone, no session connects, and the report arrives', async () => {
    const room = unique('setup-fails');
    const c = await callerIn(room, 'setup-user');
    expect(await c.waitForDisconnect(30_000)).toBe(DisconnectReason.ROOM_DELETED);
    const call = await system.reportedCall(room);
    expect(call.end_reason).toBe('error');
    expect(call.report.errors.map((e: { source: string }) => e.source)).toContain('setup');
    expect(call.report.hooks.map((h: { name: string }) => h.name)).toContain(
      'save-transcript-elsewhere',
    );
    expect(c.events.some((e) => e.kind === 'participant-joined')).toBe(false);
  });

  it('a hook registered while the call ends is refused and reported; stock shutdown callbacks run as bounded hooks, told the reason', async () => {
    const room = unique('late-hook');
    const c = await callerIn(room, 'late-user');
    await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
    await c.say('Goodbye!');
    const call = await system.reportedCall(room);
    expect(
      call.report.hooks.map((h: { name: string; status: string }) => [h.name, h.status]),
    ).toEqual([
      ['registers-another', 'ok'],
      ['shutdown-callback-1', 'ok'],
      ['save-transcript-elsewhere', 'ok'],
      ['too-late', 'skipped'],
    ]);
    expect(system.hookMarker(room, 'late-registration')).toMatchObject({ accepted: false });
    expect(system.hookMarker(room, 'shutdown-callback')).toMatchObject({
      reason: 'agent_end_call',
    });
    const pid = system.hookMarker(room, 'ran')!.pid;
    await waitFor('job exit', async () => !pidAlive(pid), { timeoutMs: 15_000, intervalMs: 50 });
  });

  it('no writable TMPDIR: SIGTERM still drains; at the worker drain timeout the call ends with a goodbye and reason drain, the room still there', async () => {
    const worker = await system.startAgent('agent-notmp', {
      AGENT_NAME: 'voice-agent-notmp',
      TMPDIR: '/nonexistent/tmp-for-drain-test',
      DRAIN_TIMEOUT_SECONDS: '2',
      END_STEP_TIMEOUT_MS: '2000',
      CLEANUP_BUDGET_MS: '4000',
      JOB_EXIT_GRACE_MS: '1000',
    });
    try {
      const room = unique('notmp');
      const c = await callerIn(room, 'notmp-user', 'voice-agent-notmp');
      await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
      worker.proc.child.kill('SIGTERM');
      expect(await c.waitForDisconnect(60_000)).toBe(DisconnectReason.ROOM_DELETED);
      expect(c.events.find((e) => e.kind === 'end-notice')?.detail).toEqual({ reason: 'drain' });
      await c.waitForEvent('transcription-chunk', (d) => /maintenance/.test(d.text));
      expect((await system.reportedCall(room)).end_reason).toBe('drain');
      expect((await worker.proc.exited).code).toBe(143);
    } finally {
      await worker.stop('SIGKILL');
    }
  });

  it('a second Ctrl-C kills the worker at once: its call still ends with a goodbye, reason drain, and a report', async () => {
    const worker = await system.startAgent('agent-force', { AGENT_NAME: 'voice-agent-force' });
    try {
      const room = unique('force');
      const c = await callerIn(room, 'force-user', 'voice-agent-force');
      await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
      worker.proc.child.kill('SIGINT');
      // The second Ctrl-C comes after the first was handled, as a person's would.
      await waitFor(
        'first SIGINT handled',
        async () => readFileSync(worker.proc.logFile, 'utf8').includes('SIGINT received'),
        { timeoutMs: 5_000, intervalMs: 20 },
      );
      worker.proc.child.kill('SIGINT');
      expect((await worker.proc.exited).code).toBe(130);
      expect(await c.waitForDisconnect(30_000)).toBe(DisconnectReason.ROOM_DELETED);
      expect(c.events.find((e) => e.kind === 'end-notice')?.detail).toEqual({ reason: 'drain' });
      await c.waitForEvent('transcription-chunk', (d) => /maintenance/.test(d.text));
      expect((await system.reportedCall(room)).end_reason).toBe('drain');
    } finally {
      await worker.stop('SIGKILL');
    }
  });
});
