import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CallClient } from '../support/call-client.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { waitFor } from '../support/processes.ts';
import { pidAlive } from '../support/system.ts';

/**
 * The edge is down while calls end: the calls end as usual for the caller, their reports wait in
 * the worker's outbox (a directory), the worker is killed and a new one started on the same
 * directory, the edge comes back (same port, same local D1), and every report lands exactly once,
 * transcript included.
 */
const system = systemForThisFile('report outbox tests', {
  departureTimeout: 2,
  agentEnv: { REPORT_OUTBOX_RETRY_SECONDS: '1' },
});
// Every worker the system starts (the first, and the one after the restart) uses this outbox.
const outbox = join(system.dir, 'outbox');
const clients: CallClient[] = [];
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.leave()));
});

const waitingReports = () =>
  existsSync(outbox) ? readdirSync(outbox).filter((f) => f.endsWith('.json')) : [];
const claimed = () =>
  existsSync(join(outbox, 'sending')) ? readdirSync(join(outbox, 'sending')) : [];

describe.skipIf(system.skipped)(
  'the report outbox, against the real LiveKit server and edge',
  () => {
    it('edge down while 3 calls end: they end at once, and once it is back every report lands exactly once, even through a worker restart', async () => {
      const calls: CallClient[] = [];
      for (let i = 0; i < 3; i++) {
        const c = new CallClient();
        clients.push(c);
        await c.join(system.edge.url, '', {});
        calls.push(c);
      }
      await Promise.all(
        calls.map((c) => c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 60_000)),
      );

      await system.edge.stop();
      const edgeUrl = system.edge.url;
      expect(await fetch(`${edgeUrl}/healthz`).catch(() => 'down')).toBe('down');

      // Every caller hangs up: each call ends for the caller (its room is deleted), its job exits
      // after its cleanup budget without the edge, and its report waits in the outbox.
      for (const c of calls) await c.leave();
      for (const c of calls) {
        await waitFor(
          `room ${c.roomName} deleted`,
          async () => !(await system.roomExists(c.roomName)),
        );
        const marker = await waitFor(`hooks of ${c.roomName}`, async () =>
          system.hookMarker(c.roomName, 'ran'),
        );
        await waitFor(`job of ${c.roomName} exits`, async () => !pidAlive(marker.pid), {
          timeoutMs: 60_000,
        });
      }
      await waitFor('3 reports in the outbox', async () => waitingReports().length === 3, {
        timeoutMs: 60_000,
      });
      const kept = waitingReports().map((f) => readFileSync(join(outbox, f), 'utf8'));
      expect(kept.map((body) => JSON.parse(body).room).sort()).toEqual(
        calls.map((c) => c.roomName).sort(),
      );

      // The worker dies; a new one on the same outbox takes the reports over while the edge is
      // still down (it tries, and keeps them).
      await system.agent.stop('SIGKILL');
      const second = await system.startAgent('agent-after-restart');
      await waitFor(
        'the new worker tries the kept reports',
        async () =>
          readFileSync(second.proc.logFile, 'utf8').includes(
            'report still not delivered; kept in the outbox',
          ),
        { timeoutMs: 60_000 },
      );
      expect(waitingReports().length + claimed().length).toBe(3);

      // The edge comes back on the same port with the same ledger.
      await system.restartEdge();
      for (const c of calls) {
        const view = await waitFor(
          `report for ${c.roomName}`,
          async () => {
            const v = await system.call(c.roomName);
            return v.report ? v : undefined;
          },
          { timeoutMs: 180_000, intervalMs: 250 },
        );
        expect(view).toMatchObject({ status: 'ended', end_reason: 'participant_left' });
        const transcript = view.report.transcript.map((t: any) => `${t.role}: ${t.text}`);
        expect(transcript.some((t: string) => /^assistant: Hello!/.test(t))).toBe(true);
      }
      await waitFor(
        'the outbox is empty',
        async () => !waitingReports().length && !claimed().length,
      );

      // Exactly once: the edge accepted each call's report once, and the worker posted each once.
      const edgeLog = readFileSync(system.edge.proc.logFile, 'utf8');
      const agentLog = readFileSync(second.proc.logFile, 'utf8');
      for (const c of calls) {
        const accepted = edgeLog
          .split('\n')
          .filter((l) => l.includes('report accepted') && l.includes(c.roomName));
        expect(accepted).toHaveLength(1);
        const posted = agentLog
          .split('\n')
          .filter((l) => l.includes('report delivered from the outbox') && l.includes(c.roomName));
        expect(posted).toHaveLength(1);
      }
    });
  },
);
