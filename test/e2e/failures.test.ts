import { DisconnectReason } from '@livekit/rtc-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentWorker } from '../support/agent-worker.ts';
import { type CallClient } from '../support/call-client.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { waitFor } from '../support/processes.ts';
import { E2E_BACKSTOP_GRACE_SECONDS, pidAlive } from '../support/system.ts';

let proxy: FaultProxy;
const CLEANUP_BUDGET_MS = 6000;

const system = systemForThisFile('failure tests', {
  departureTimeout: 2,
  // Tests that kill, drain or reconfigure a worker start their own under their own agent name, so
  // LiveKit can only dispatch their calls to that worker; `system.agent` serves the rest throughout.
  edgeVars: {
    AGENT_ALLOWED_NAMES: [
      'voice-agent',
      'voice-agent-idle',
      'voice-agent-flaky',
      'voice-agent-drain',
      'voice-agent-backstop',
      'voice-agent-killed',
    ].join(','),
  },
  agentEnv: {
    CLEANUP_BUDGET_MS: String(CLEANUP_BUDGET_MS),
    MAX_DURATION_WARNING_SECONDS: '3',
    DRAIN_TIMEOUT_SECONDS: '4',
  },
});
beforeAll(async () => {
  if (system.skipped) return;
  proxy = await startFaultProxy(system.edge.url);
});
afterAll(async () => {
  await proxy?.close();
});

async function backendCaller(
  room: string,
  metadata: Record<string, unknown> = {},
  agentName?: string,
): Promise<CallClient> {
  const client = await system.backendCaller(room, { metadata, agentName });
  await client.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
  return client;
}
const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}`;

describe.skipIf(system.skipped)(
  'limits, deploys and failures, against the real LiveKit server',
  () => {
    it('a short maximum duration: a spoken warning, then the end for everyone with max_duration', async () => {
      const c = await backendCaller(unique('maxdur'), { max_duration_seconds: 8 });
      const warning = await c.waitForEvent(
        'transcription',
        (d) => /seconds left/.test(d.text),
        15_000,
      );
      expect(await c.waitForDisconnect(15_000)).toBe(DisconnectReason.ROOM_DELETED);
      const ended = c.events.find((e) => e.kind === 'disconnected')!;
      expect(ended.at).toBeGreaterThan(warning.at);
      expect(c.events.find((e) => e.kind === 'end-notice')!.detail).toEqual({
        reason: 'max_duration',
      });
      const call = await system.reportedCall(c.roomName);
      expect(call).toMatchObject({ end_reason: 'max_duration', ended_by: 'system' });
    });

    it('idle ladder: a silent user is asked "Are you still there?", then the call ends with idle_timeout', async () => {
      const idle = await system.startAgent('agent-idle', {
        AGENT_NAME: 'voice-agent-idle',
        IDLE_PROMPT_SECONDS: '3',
        IDLE_END_SECONDS: '3',
      });
      try {
        const c = await backendCaller(unique('idle'), {}, 'voice-agent-idle');
        const prompt = await c.waitForEvent(
          'transcription',
          (d) => /still there/.test(d.text),
          15_000,
        );
        expect(await c.waitForDisconnect(15_000)).toBe(DisconnectReason.ROOM_DELETED);
        expect(
          c.events.find((e) => e.kind === 'disconnected')!.at - prompt.at,
        ).toBeGreaterThanOrEqual(2_500);
        expect(c.events.find((e) => e.kind === 'end-notice')!.detail).toEqual({
          reason: 'idle_timeout',
        });
        const goodbye = await c.waitForEvent('transcription-chunk', (d) =>
          /haven't heard from you/.test(d.text),
        );
        expect(goodbye.at).toBeLessThanOrEqual(c.events.find((e) => e.kind === 'disconnected')!.at);
        expect((await system.reportedCall(c.roomName)).end_reason).toBe('idle_timeout');
      } finally {
        await idle.stop('SIGKILL');
      }
    });

    it('a hook that hangs and one that throws: the others run, the report arrives, the job exits within the budget', async () => {
      const c = await backendCaller(unique('chaos'));
      const hungUpAt = Date.now();
      await c.leave();
      const ran = await waitFor('user hook', async () => system.hookMarker(c.roomName, 'ran'), {
        timeoutMs: 15_000,
      });
      expect(ran.reason).toBe('participant_left');
      expect(system.hookMarker(c.roomName, 'hang-started')).toBeTruthy();
      expect(system.hookMarker(c.roomName, 'throw-started')).toBeTruthy();
      await waitFor('job exit', async () => !pidAlive(ran.pid), {
        timeoutMs: 30_000,
        intervalMs: 20,
      });
      const exitMs = Date.now() - hungUpAt;
      console.log(`chaos hooks: hang-up → job exit ${exitMs} ms (budget ${CLEANUP_BUDGET_MS} ms)`);
      // Within the budget plus the exit grace, with room for a busy machine; stock never exits here.
      expect(exitMs).toBeLessThan(2 * CLEANUP_BUDGET_MS + 5_000);
      const call = await system.reportedCall(c.roomName);
      expect(call.report.hooks.map((h: any) => [h.name, h.status])).toEqual([
        ['hangs-forever', 'timeout'],
        ['throws', 'error'],
        ['save-transcript-elsewhere', 'ok'],
      ]);
    });

    describe('the report endpoint down during cleanup', () => {
      let flaky: AgentWorker;
      beforeAll(async () => {
        flaky = await system.startAgent('agent-flaky', {
          AGENT_NAME: 'voice-agent-flaky',
          EDGE_URL: proxy.url,
        });
      });
      afterAll(() => flaky?.stop('SIGKILL'));
      afterEach(() => {
        proxy.reportAttempts = 0;
        proxy.refuseReports = 0;
      });

      it('back within the budget: retried, delivered once', async () => {
        const c = await backendCaller(unique('flaky-back'), {}, 'voice-agent-flaky');
        proxy.reportAttempts = 0;
        proxy.refuseReports = 2;
        await c.leave();
        const call = await system.reportedCall(c.roomName);
        expect(proxy.reportAttempts).toBe(3);
        expect(call.report.end_reason).toBe('participant_left');
      });

      it('never back: the agent gives up inside its budget, and the ledger closes from room_finished', async () => {
        const c = await backendCaller(unique('flaky-gone'), {}, 'voice-agent-flaky');
        proxy.reportAttempts = 0;
        proxy.refuseReports = 1_000;
        await c.leave();
        const ran = await waitFor('user hook', async () => system.hookMarker(c.roomName, 'ran'), {
          timeoutMs: 15_000,
        });
        await waitFor('job exit', async () => !pidAlive(ran.pid), {
          timeoutMs: CLEANUP_BUDGET_MS + 10_000,
          intervalMs: 50,
        });
        expect(proxy.reportAttempts).toBeGreaterThan(1);
        const call = await system.endedCall(c.roomName, 'ledger closed by webhook');
        expect(call).toMatchObject({
          end_source: 'webhook',
          end_reason: 'participant_left',
          report: null,
        });
      });
    });

    it('SIGTERM mid-call: the call goes on until the drain deadline, ends with drain, the worker exits 143; a second worker takes the next call', async () => {
      const draining = await system.startAgent('agent-drain', { AGENT_NAME: 'voice-agent-drain' });
      let successor: AgentWorker | undefined;
      try {
        const c = await backendCaller(unique('drain'), {}, 'voice-agent-drain');
        successor = await system.startAgent('agent-drain-successor', {
          AGENT_NAME: 'voice-agent-drain',
        });
        const signalledAt = Date.now();
        draining.proc.child.kill('SIGTERM');
        expect(await c.waitForDisconnect(60_000)).toBe(DisconnectReason.ROOM_DELETED);
        const endedAfter = Date.now() - signalledAt;
        expect(endedAfter).toBeGreaterThanOrEqual(4000);
        expect(c.events.find((e) => e.kind === 'end-notice')!.detail).toEqual({ reason: 'drain' });
        const goodbye = await c.waitForEvent('transcription-chunk', (d) =>
          /maintenance/.test(d.text),
        );
        expect(goodbye.at).toBeLessThanOrEqual(c.events.find((e) => e.kind === 'disconnected')!.at);
        const call = await system.reportedCall(c.roomName);
        expect(call.end_reason).toBe('drain');
        const exit = await draining.proc.exited;
        expect(exit.code).toBe(143);
        const next = await backendCaller(unique('after-drain'), {}, 'voice-agent-drain');
        expect(await successor.activeJobs()).toBe(1);
        await next.leave();
      } finally {
        await Promise.allSettled([draining.stop('SIGKILL'), successor?.stop('SIGKILL')]);
      }
    });

    it('the agent SIGKILLed mid-call: the call’s deadline alarm deletes the overdue room and records max_duration, no cron run', async () => {
      const doomed = await system.startAgent('agent-backstop', {
        AGENT_NAME: 'voice-agent-backstop',
      });
      try {
        const c = await backendCaller(
          unique('backstop'),
          { max_duration_seconds: 5, end_mode: 'leave' },
          'voice-agent-backstop',
        );
        await doomed.stop('SIGKILL');
        // wrangler dev runs no cron by itself (only on /__scheduled, which this test never asks
        // for): only the call's own object can delete the room.
        expect(await c.waitForDisconnect(60_000)).toBe(DisconnectReason.ROOM_DELETED);
        const deletedAt = Date.now();
        // The room is deleted first, then the ledger written: wait for the write, not for the disconnect.
        const call = await system.endedCall(c.roomName, 'ledger closed by the deadline alarm');
        expect(call).toMatchObject({
          status: 'ended',
          end_reason: 'max_duration',
          end_source: 'deadline',
        });
        // Not before the deadline plus grace; how soon after it is a measurement, not a rule.
        const overdueAt = Date.parse(call.deadline_at) + E2E_BACKSTOP_GRACE_SECONDS * 1000;
        expect(deletedAt).toBeGreaterThanOrEqual(overdueAt);
        console.log(
          `deadline alarm: room deleted ${deletedAt - overdueAt} ms after it was overdue`,
        );
      } finally {
        await doomed.stop('SIGKILL');
      }
    });

    it('the agent SIGKILLed mid-call, then the user leaves: the ledger closes from the webhook with reason error', async () => {
      const doomed = await system.startAgent('agent-killed', { AGENT_NAME: 'voice-agent-killed' });
      try {
        const c = await backendCaller(unique('killed'), {}, 'voice-agent-killed');
        await doomed.stop('SIGKILL');
        await c.waitForEvent('participant-left', (d) => d.identity.startsWith('agent-'), 30_000);
        await c.leave();
        const call = await system.endedCall(c.roomName, 'ledger closed by webhook');
        expect(call).toMatchObject({ end_source: 'webhook', end_reason: 'error', report: null });
      } finally {
        await doomed.stop('SIGKILL');
      }
    });
  },
);
