import { DisconnectReason } from '@livekit/rtc-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig, shutdownBudget } from '../../agent/config.ts';
import { END_REASONS } from '../../wire-contract/index.ts';
import type { AgentWorker } from '../support/agent-worker.ts';
import { CallClient } from '../support/call-client.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { waitFor } from '../support/processes.ts';
import { pidAlive } from '../support/system.ts';

/**
 * The agent's endings that stock agents-js gets wrong, against the real LiveKit server: a caller
 * who drops and comes back, a call that fails during setup, hooks registered late, and a worker
 * that agents-js shuts down itself (its drain timeout, a second Ctrl-C).
 */
const GRACE_SECONDS = 6;
const AGENTS = [
  'voice-agent',
  'voice-agent-grace',
  'voice-agent-notmp',
  'voice-agent-force',
  'voice-agent-watch',
  'voice-agent-poolstart',
];
const clients: CallClient[] = [];
const children: ChildProcess[] = [];

// LiveKit's default departure timeout (20 s): a reconnect grace only helps below it, since the
// room closes that long after the last caller left.
const system = systemForThisFile('agent shutdown tests', {
  edgeVars: { AGENT_ALLOWED_NAMES: AGENTS.join(',') },
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.allSettled(clients.map((c) => c.leave()));
});

const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}`;
/** What loadAgentConfig needs besides the values a test sets, to derive its budgets. */
const configBase = {
  LIVEKIT_URL: 'ws://127.0.0.1:7880',
  LIVEKIT_API_KEY: 'k',
  LIVEKIT_API_SECRET: 's',
  OPENAI_API_KEY: 'sk',
};

/** A token for this room and identity from the edge, as a trusted backend asks for one. */
async function backendToken(
  room: string,
  identity: string,
  agentName = 'voice-agent',
  metadata?: object,
) {
  const res = await fetch(`${system.edge.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${system.edge.appKey}` },
    body: JSON.stringify({
      room_name: room,
      participant_identity: identity,
      room_config: {
        agents: [
          { agent_name: agentName, ...(metadata && { metadata: JSON.stringify(metadata) }) },
        ],
      },
    }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { server_url: string; participant_token: string };
}

async function callerIn(
  room: string,
  identity: string,
  agentName?: string,
  metadata?: object,
): Promise<CallClient> {
  const { server_url, participant_token } = await backendToken(room, identity, agentName, metadata);
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

/** The drain itself is bounded below, from the configuration; this covers a busy machine's start. */
const SIGTERM_TEST_TIMEOUT_MS = 300_000;

/** The final caption of a line the agent spoke, once its text stream closed. */
const caption = (c: CallClient, text: string) =>
  c.events.find(
    (e) => e.kind === 'transcription' && (e.detail as { text: string }).text.trim() === text,
  );
const DRAIN_GOODBYE = END_REASONS.drain.goodbye!;
/** The OpenAI stand-in's TTS speaks 40 ms per character (test/support/openai-stand-in.ts). */
const spokenMs = (line: string) => line.length * 40;

describe.skipIf(system.skipped)(
  'endings agents-js gets wrong, against the real LiveKit server',
  () => {
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

    it('a call that fails during setup in end mode leave: the room is deleted all the same, the caller is not left waiting for an agent that never joined', async () => {
      const room = unique('setup-fails-leave');
      const c = await callerIn(room, 'setup-leave-user', undefined, { end_mode: 'leave' });
      expect(await c.waitForDisconnect(30_000)).toBe(DisconnectReason.ROOM_DELETED);
      const call = await system.reportedCall(room);
      expect(call.end_reason).toBe('error');
      expect(call.report.errors.map((e: { source: string }) => e.source)).toContain('setup');
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

    // The goodbye step's bound (END_STEP_TIMEOUT_MS) must hold the whole drain goodbye with room to
    // spare (75 characters: 3 s of stand-in speech, plus TTS latency and the step's 1 s cut-in), or a
    // busy machine hears it cut off: 10 s. It also sets agents-js' own drain timeout, which this test
    // waits out: shutdownBudget (agent/config.ts) makes it 2 s + 3 x 10 s + 4 s + 1 s + 2 s = 39 s.
    const notmpEnv = {
      AGENT_NAME: 'voice-agent-notmp',
      TMPDIR: '/nonexistent/tmp-for-drain-test',
      DRAIN_TIMEOUT_SECONDS: '2',
      END_STEP_TIMEOUT_MS: '10000',
      CLEANUP_BUDGET_MS: '4000',
      JOB_EXIT_GRACE_MS: '1000',
    };

    it(
      'no writable TMPDIR: SIGTERM still drains; at the worker drain timeout the call ends with the whole goodbye and reason drain, the room still there',
      async () => {
        expect(spokenMs(DRAIN_GOODBYE) * 2).toBeLessThan(Number(notmpEnv.END_STEP_TIMEOUT_MS));
        const stock = shutdownBudget(loadAgentConfig({ ...configBase, ...notmpEnv }));
        const worker = await system.startAgent('agent-notmp', notmpEnv);
        try {
          const room = unique('notmp');
          const c = await callerIn(room, 'notmp-user', 'voice-agent-notmp');
          await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
          const signalledAt = Date.now();
          worker.proc.child.kill('SIGTERM');
          // The job is shut down at the drain timeout and killed a shutdownProcessTimeout later.
          expect(
            await c.waitForDisconnect(
              stock.drainTimeoutMs + stock.shutdownProcessTimeoutMs + 20_000,
            ),
          ).toBe(DisconnectReason.ROOM_DELETED);
          const disconnected = c.events.find((e) => e.kind === 'disconnected')!;
          // No drain file, no watcher: only agents-js' drain timeout ended it.
          expect(disconnected.at - signalledAt).toBeGreaterThanOrEqual(stock.drainTimeoutMs);
          expect(c.events.find((e) => e.kind === 'end-notice')?.detail).toEqual({
            reason: 'drain',
          });
          // Spoken in full while the room was there: its caption stream closed before the disconnect.
          expect(caption(c, DRAIN_GOODBYE), 'the drain goodbye caption').toBeDefined();
          expect(caption(c, DRAIN_GOODBYE)!.at).toBeLessThanOrEqual(disconnected.at);
          expect((await system.reportedCall(room)).end_reason).toBe('drain');
          expect((await worker.proc.exited).code).toBe(143);
        } finally {
          await worker.stop('SIGKILL');
        }
      },
      SIGTERM_TEST_TIMEOUT_MS,
    );

    // The drain watcher (agent/process/drain-signal.ts) is what ends a call at
    // DRAIN_TIMEOUT_SECONDS; without it agents-js' own drain timeout does, far later. The upper bound
    // is what the watcher needs: the deadline, one 500 ms poll, the announce (<= 1 s), the goodbye
    // (bounded by END_STEP_TIMEOUT_MS), the 500 ms caption flush and DeleteRoom, plus 5 s for a busy
    // machine: 3 + 0.5 + 1 + 10 + 0.5 + 5 = 20 s. The stock path takes 3 + 3 x 10 + 4 + 1 + 2 = 40 s
    // (shutdownBudget); the test checks the two stay at least 15 s apart.
    it(
      'SIGTERM with a writable TMPDIR: the drain watcher ends the call at DRAIN_TIMEOUT_SECONDS with the whole goodbye, long before agents-js would',
      async () => {
        const env = {
          AGENT_NAME: 'voice-agent-watch',
          DRAIN_TIMEOUT_SECONDS: '3',
          END_STEP_TIMEOUT_MS: '10000',
          CLEANUP_BUDGET_MS: '4000',
          JOB_EXIT_GRACE_MS: '1000',
        };
        const config = loadAgentConfig({ ...configBase, ...env });
        const deadlineMs = config.DRAIN_TIMEOUT_SECONDS * 1000;
        const watcherBoundMs = deadlineMs + 500 + 1_000 + config.END_STEP_TIMEOUT_MS + 500 + 5_000;
        const stockMs = shutdownBudget(config).drainTimeoutMs;
        expect(stockMs - watcherBoundMs).toBeGreaterThanOrEqual(15_000);
        expect(spokenMs(DRAIN_GOODBYE) * 2).toBeLessThan(config.END_STEP_TIMEOUT_MS);
        const worker = await system.startAgent('agent-watch', env);
        try {
          const room = unique('watch');
          const c = await callerIn(room, 'watch-user', 'voice-agent-watch');
          await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
          const signalledAt = Date.now();
          worker.proc.child.kill('SIGTERM');
          expect(await c.waitForDisconnect(stockMs + 30_000)).toBe(DisconnectReason.ROOM_DELETED);
          const disconnected = c.events.find((e) => e.kind === 'disconnected')!;
          const endedAfter = disconnected.at - signalledAt;
          console.log(
            `SIGTERM → room deleted: ${endedAfter} ms (watcher bound ${watcherBoundMs} ms)`,
          );
          expect(endedAfter).toBeGreaterThanOrEqual(deadlineMs);
          expect(endedAfter).toBeLessThan(watcherBoundMs);
          const notice = c.events.find((e) => e.kind === 'end-notice')!;
          expect(notice.detail).toEqual({ reason: 'drain' });
          expect(notice.at - signalledAt).toBeGreaterThanOrEqual(deadlineMs);
          expect(caption(c, DRAIN_GOODBYE), 'the drain goodbye caption').toBeDefined();
          expect(caption(c, DRAIN_GOODBYE)!.at).toBeLessThanOrEqual(disconnected.at);
          expect((await system.reportedCall(room)).end_reason).toBe('drain');
          expect((await worker.proc.exited).code).toBe(143);
        } finally {
          await worker.stop('SIGKILL');
        }
      },
      SIGTERM_TEST_TIMEOUT_MS,
    );

    // agents-js's own drain joins every pooled job process, and join() on one still waiting its turn
    // to start throws "runner not started" (worker.js drain, ipc/supervised_proc.js join): its CLI
    // then closed the worker at once. A deploy signals whenever it likes. Here job processes start
    // slowly (test/support/slow-job-start.ts) and the pool keeps 3 warm, started one at a time: the
    // call takes the first, and the signal comes while the others (and the call's replacement) are
    // still queued. Bounds from the configuration: the drain goodbye needs the whole drain window.
    it(
      'SIGTERM while the pool is still starting a process: the call still gets DRAIN_TIMEOUT_SECONDS, then ends drain with its goodbye',
      async () => {
        const env = {
          AGENT_NAME: 'voice-agent-poolstart',
          AGENT_IDLE_PROCESSES: '3',
          DRAIN_TIMEOUT_SECONDS: '4',
          END_STEP_TIMEOUT_MS: '10000',
          CLEANUP_BUDGET_MS: '4000',
          JOB_EXIT_GRACE_MS: '1000',
          NODE_OPTIONS: `--import=${resolve(import.meta.dirname, '../support/slow-job-start.ts')}`,
          SLOW_JOB_START_MS: '4000',
        };
        const config = loadAgentConfig({ ...configBase, ...env });
        const worker = await system.startAgent('agent-poolstart', env);
        try {
          const log = () => readFileSync(worker.proc.logFile, 'utf8');
          const count = (text: string) => log().split(text).length - 1;
          // The call needs a warm process: the first one.
          await waitFor('a warm job process', async () => count('job runner initialized') >= 1, {
            timeoutMs: 60_000,
            intervalMs: 100,
          });
          const room = unique('poolstart');
          const c = await callerIn(room, 'poolstart-user', 'voice-agent-poolstart');
          await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
          // Three kept warm plus the call's own: fewer forked means one is still queued, unstarted.
          expect(count('test: job process forked')).toBeLessThan(4);
          const signalledAt = Date.now();
          worker.proc.child.kill('SIGTERM');
          // One may have been forked since: the path under test is taken only if agents-js's
          // drain really met a process still waiting to start, which the worker's drain logs.
          await waitFor(
            'the drain meeting a process the pool has not started',
            async () =>
              /"msg":"agents-js could not join a pooled process[^\n]*"error":"runner not started"/.test(
                log(),
              ),
            { timeoutMs: 10_000, intervalMs: 100 },
          );
          expect(await c.waitForDisconnect(shutdownBudget(config).drainTimeoutMs + 30_000)).toBe(
            DisconnectReason.ROOM_DELETED,
          );
          const notice = c.events.find((e) => e.kind === 'end-notice')!;
          expect(notice.detail).toEqual({ reason: 'drain' });
          expect(notice.at - signalledAt).toBeGreaterThanOrEqual(
            config.DRAIN_TIMEOUT_SECONDS * 1000,
          );
          expect(caption(c, DRAIN_GOODBYE), 'the drain goodbye caption').toBeDefined();
          expect((await system.reportedCall(room)).end_reason).toBe('drain');
          expect((await worker.proc.exited).code).toBe(143);
          // agents-js's drain still fails on the unstarted process; the worker drains anyway.
          expect(log()).not.toMatch(/"level":50[^\n]*runner not started/);
        } finally {
          await worker.stop('SIGKILL');
        }
      },
      SIGTERM_TEST_TIMEOUT_MS,
    );

    it('a second Ctrl-C kills the worker at once: its orphaned call still ends (no time for a goodbye), reason drain, with its hooks and report', async () => {
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
        // agents-js exits an orphaned job 15 s after its last ping: the goodbye is skipped so the
        // hooks and the report fit in that window.
        expect(
          c.events.some(
            (e) =>
              e.kind.startsWith('transcription') &&
              /maintenance/.test((e.detail as { text: string }).text),
          ),
        ).toBe(false);
        expect((await system.reportedCall(room)).end_reason).toBe('drain');
        expect(system.hookMarker(room, 'ran')?.reason).toBe('drain');
      } finally {
        await worker.stop('SIGKILL');
      }
    });
  },
);
