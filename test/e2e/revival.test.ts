import { DisconnectReason } from '@livekit/rtc-node';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentWorker } from '../support/agent-worker.ts';
import { CallClient } from '../support/call-client.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { waitFor } from '../support/processes.ts';

/**
 * One token is one call: LiveKit recreates a deleted room, and re-runs the token's agent dispatch,
 * for anyone who joins again with a still-valid token. For every way a call ends, the same token
 * rejoins: it must be disconnected at once, hear nothing, cost no model request, and leave the
 * ledger's first end as it was, with the attempt counted.
 */
let idleAgent: AgentWorker;
let drainingAgent: AgentWorker;
const clients: CallClient[] = [];

const system = systemForThisFile('revival tests', {
  edgeVars: { AGENT_ALLOWED_NAMES: 'voice-agent,voice-agent-idle,voice-agent-drain' },
  agentEnv: { MAX_DURATION_WARNING_SECONDS: '2' },
});
beforeAll(async () => {
  if (system.skipped) return;
  idleAgent = await system.startAgent('agent-idle', {
    AGENT_NAME: 'voice-agent-idle',
    IDLE_PROMPT_SECONDS: '2',
    IDLE_END_SECONDS: '2',
  });
  // Drained (SIGTERM, as a deploy does) by its call's ending, so a worker of its own; its call
  // is given 3 s to finish before the maintenance goodbye.
  drainingAgent = await system.startAgent('agent-drain', {
    AGENT_NAME: 'voice-agent-drain',
    DRAIN_TIMEOUT_SECONDS: '3',
  });
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.leave()));
  await idleAgent?.stop('SIGKILL');
  await drainingAgent?.stop('SIGKILL');
});

const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}`;

/** A backend's caller (app key), greeted by the agent. */
async function greetedCaller(
  room: string,
  metadata: Record<string, unknown> = {},
  agentName?: string,
) {
  const client = await system.backendCaller(room, { metadata, agentName });
  await client.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
  return client;
}

function endFor(room: string) {
  return fetch(`${system.edge.url}/calls/${room}/end`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${system.edge.adminKey}`,
    },
    body: JSON.stringify({ mode: 'end_for_all' }),
  });
}

const ENDINGS: [string, string, (c: CallClient) => Promise<unknown>, string?][] = [
  ['the end-call API', 'api_end_call', (c) => endFor(c.roomName)],
  ["the agent's end_call", 'agent_end_call', (c) => c.say('Thanks, goodbye!')],
  ['the idle limit', 'idle_timeout', async () => {}, 'voice-agent-idle'],
  ['the maximum duration', 'max_duration', async () => {}],
  ['a hang-up (end_for_all)', 'participant_left', (c) => c.leave()],
  [
    'a drain (the worker’s SIGTERM)',
    'drain',
    async () => drainingAgent.proc.child.kill('SIGTERM'),
    'voice-agent-drain',
  ],
];

describe.skipIf(system.skipped)(
  'a token reused after its call ended does not revive the call',
  () => {
    it.each(ENDINGS)(
      'after %s, a rejoin with the same token is closed at once, unheard and unbilled',
      async (_how, reason, end, agentName) => {
        const room = unique(`revive-${reason.replace(/_/g, '-')}`);
        const c = await greetedCaller(
          room,
          reason === 'max_duration' ? { max_duration_seconds: 5 } : {},
          agentName,
        );
        await end(c);
        // The first call is over once the agent's report has landed: its model work is done.
        const first = await system.reportedCall(room);
        expect(first).toMatchObject({ status: 'ended', end_reason: reason });
        await waitFor('the first room is gone', async () => !(await system.roomExists(room)));
        const modelRequests = system.openai.requests.length;
        const transcriptions = system.openai.transcriptions.length;

        const again = new CallClient();
        clients.push(again);
        const rejoinedAt = Date.now();
        // Closed on its first webhook, the room can go before the caller's media connection is
        // up: then the join itself fails. Either way the rejoin gets no call.
        const joined = await again
          .connect(system.livekit.url, c.participantToken, room, c.identity)
          .then(() => true)
          .catch((err: Error) => (console.log(`${reason}: rejoin failed: ${err.message}`), false));
        if (joined)
          expect(await again.waitForDisconnect(20_000)).toBe(DisconnectReason.ROOM_DELETED);
        console.log(`${reason}: rejoin closed after ${Date.now() - rejoinedAt} ms`);

        // The revival is counted once its first webhook or its agent reached the edge; any agent
        // LiveKit dispatched into the revived room has asked the edge and been sent away, or never
        // got a job, once the worker runs no job.
        const after = await waitFor('the revival counted', async () => {
          const view = await system.call(room);
          return view.revival_attempts >= 1 ? view : undefined;
        });
        const worker = workerFor(agentName);
        if (worker === drainingAgent) await worker.proc.exited;
        else await waitFor('no agent job left', async () => (await worker.activeJobs()) === 0);
        const log = readFileSync(worker.proc.logFile, 'utf8');
        const jobsForRoom = log.split('\n').filter((l) => l.includes(room));
        const refused = jobsForRoom.some((l) => l.includes('call refused by the edge'));
        console.log(
          `${reason}: agent for the revived room ${refused ? 'refused' : 'not dispatched'}`,
        );

        expect(again.events.filter((e) => e.kind.startsWith('transcription'))).toEqual([]);
        expect(again.events.some((e) => e.kind === 'agent-audio')).toBe(false);
        expect(system.openai.requests.length).toBe(modelRequests);
        expect(system.openai.transcriptions.length).toBe(transcriptions);
        for (const field of [
          'status',
          'end_reason',
          'ended_by',
          'ended_at',
          'started_at',
          'room_sid',
        ])
          expect(after[field]).toEqual(first[field]);
        expect(after.report.call_id).toBe(first.report.call_id);
        expect(await system.roomGone(room)).toBe(true);
      },
    );
  },
);

function workerFor(agentName: string | undefined): AgentWorker {
  if (agentName === 'voice-agent-drain') return drainingAgent;
  return agentName ? idleAgent : system.agent;
}
