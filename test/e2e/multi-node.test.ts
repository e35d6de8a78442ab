import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentWorker } from '../support/agent-worker.ts';
import { CallClient } from '../support/call-client.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import type { LiveKit } from '../support/livekit-server.ts';
import { waitFor } from '../support/processes.ts';

/**
 * When one machine is not enough: two LiveKit nodes sharing a Redis (LiveKit's own multi-node
 * routing), one agent worker registered on each, callers joining through either node. Every call
 * gets exactly one agent; a worker SIGKILLed mid-call closes its calls in the ledger and leaves the
 * other worker's calls alone; new calls go to the survivor.
 */

const system = systemForThisFile('multi-node test', {
  needs: ['redis'],
  livekitNodes: 2,
  departureTimeout: 2,
  agent: false,
});
let workers: AgentWorker[];
const clients: CallClient[] = [];

beforeAll(async () => {
  if (system.skipped) return;
  const [a, b] = system.livekits;
  workers = [
    await system.startAgent('agent-on-a', { LIVEKIT_URL: a!.url }),
    await system.startAgent('agent-on-b', { LIVEKIT_URL: b!.url }),
  ];
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.leave()));
});

/** A caller with a token from the edge, joining through `node`, greeted by the agent. */
async function callVia(node: LiveKit): Promise<CallClient> {
  const res = await fetch(`${system.edge.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  const token = (await res.json()) as {
    participant_token: string;
    room_name: string;
    participant_identity: string;
  };
  const client = new CallClient();
  clients.push(client);
  await client.connect(
    node.url,
    token.participant_token,
    token.room_name,
    token.participant_identity,
  );
  await client.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
  return client;
}

/** Which worker runs the call: the parent of the job process that registered its hooks. */
function workerOf(room: string): AgentWorker {
  const { pid } = JSON.parse(
    readFileSync(join(system.hooksDir, `${room}.registered.json`), 'utf8'),
  ) as {
    pid: number;
  };
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  const worker = workers.find((w) => w.proc.child.pid === ppid);
  if (!worker) throw new Error(`job ${pid} of ${room} belongs to no worker`);
  return worker;
}

const agentsIn = async (room: string) =>
  (await system.rooms.listParticipants(room)).filter((p) => Number(p.kind) === 4).length;

describe.skipIf(system.skipped)('two LiveKit nodes sharing Redis, two agent workers', () => {
  it('dispatches every call exactly once, keeps one worker’s calls when the other is killed, and sends new calls to the survivor', async () => {
    const calls = [
      await callVia(system.livekits[0]!),
      await callVia(system.livekits[1]!),
      await callVia(system.livekits[0]!),
      await callVia(system.livekits[1]!),
    ];
    for (const c of calls) expect(await agentsIn(c.roomName)).toBe(1);
    const byWorker = new Map<AgentWorker, CallClient[]>();
    for (const c of calls)
      byWorker.set(workerOf(c.roomName), [...(byWorker.get(workerOf(c.roomName)) ?? []), c]);
    // LiveKit offers each call to the least-loaded worker (load = calls / AGENT_MAX_CONCURRENT_CALLS).
    expect(byWorker.size).toBe(2);
    const victim = workers[0]!;
    const survivor = workers.find((w) => w !== victim)!;
    const doomed = byWorker.get(victim)!;
    const spared = byWorker.get(survivor)!;

    await victim.stop('SIGKILL');
    for (const c of doomed) {
      await c.waitForEvent('participant-left', (d) => d.identity.startsWith('agent-'), 60_000);
      await c.leave();
    }
    for (const c of doomed) {
      const call = await waitFor(
        `${c.roomName} closed`,
        async () => {
          const view = (await system.call(c.roomName)) as { status: string; end_reason: string };
          return view.status === 'ended' ? view : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      expect(call.end_reason).toBe('error');
    }
    for (const c of spared) {
      expect(c.room.isConnected).toBe(true);
      await c.say('Still with me?');
      await c.waitForEvent('transcription', (d) => d.text === 'You said: Still with me?', 30_000);
    }
    const after = [await callVia(system.livekits[0]!), await callVia(system.livekits[1]!)];
    for (const c of after) {
      expect(await agentsIn(c.roomName)).toBe(1);
      expect(workerOf(c.roomName)).toBe(survivor);
    }
  });
});
