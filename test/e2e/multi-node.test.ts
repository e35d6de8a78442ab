import { dispose } from '@livekit/rtc-node';
import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RoomServiceClient } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startAgentWorker, type AgentWorker } from '../support/agent-worker.ts';
import { CallClient } from '../support/call-client.ts';
import { startEdge, type Edge } from '../support/edge-dev.ts';
import { DEV_KEY, DEV_SECRET, startLiveKit, type LiveKit } from '../support/livekit-server.ts';
import { startOpenAIStandIn, type StandIn } from '../support/openai-stand-in.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { redisServerPath, startRedis, type Redis } from '../support/redis-server.ts';

/**
 * When one machine is not enough: two LiveKit nodes sharing a Redis (LiveKit's own multi-node
 * routing), one agent worker registered on each, callers joining through either node. Every call
 * gets exactly one agent; a worker SIGKILLed mid-call closes its calls in the ledger and leaves the
 * other worker's calls alone; new calls go to the survivor.
 */
const bin = inject('livekitServerBin');
const redisBin = redisServerPath();
if (!redisBin && process.env.CI === 'true') throw new Error('multi-node test needs redis-server');
if (!redisBin) console.warn('\n*** multi-node test SKIPPED: apt-get install redis-server\n');

const dir = mkdtempSync(join(tmpdir(), 'lkvc-multinode-'));
const hooksDir = join(dir, 'hooks');
let redis: Redis;
let nodes: LiveKit[];
let edge: Edge;
let openai: StandIn;
let workers: AgentWorker[];
let rooms: RoomServiceClient;
const clients: CallClient[] = [];

beforeAll(async () => {
  if (!bin || !redisBin) return;
  redis = await startRedis(redisBin, dir);
  const edgePort = await freePort();
  const webhookUrl = `http://127.0.0.1:${edgePort}/livekit/webhook`;
  nodes = [
    await startLiveKit(bin, join(dir, 'node-a'), {
      redis: redis.address,
      webhookUrl,
      departureTimeout: 2,
    }),
    await startLiveKit(bin, join(dir, 'node-b'), {
      redis: redis.address,
      webhookUrl,
      departureTimeout: 2,
    }),
  ];
  rooms = new RoomServiceClient(nodes[0]!.httpUrl, DEV_KEY, DEV_SECRET);
  openai = await startOpenAIStandIn();
  edge = await startEdge(
    join(dir, 'edge'),
    {
      LIVEKIT_URL: nodes[0]!.url,
      LIVEKIT_API_KEY: DEV_KEY,
      LIVEKIT_API_SECRET: DEV_SECRET,
      AUTH_ALLOW_ANONYMOUS: 'true',
      BACKSTOP_GRACE_SECONDS: '0',
      // Its calls are all anonymous from 127.0.0.1, one "caller" to the open-call cap.
      MAX_OPEN_CALLS_PER_CALLER: '0',
    },
    edgePort,
  );
  const agentEnv = (node: LiveKit) => ({
    LIVEKIT_URL: node.url,
    LIVEKIT_API_KEY: DEV_KEY,
    LIVEKIT_API_SECRET: DEV_SECRET,
    OPENAI_API_KEY: 'sk-local-stand-in',
    OPENAI_BASE_URL: openai.url,
    EDGE_URL: edge.url,
    AGENT_HOOKS_MODULE: resolve(import.meta.dirname, '../support/e2e-hooks.ts'),
    E2E_HOOKS_DIR: hooksDir,
    IDLE_PROMPT_SECONDS: '0',
    AGENT_MAX_CONCURRENT_CALLS: '20',
  });
  workers = [
    await startAgentWorker(dir, agentEnv(nodes[0]!), 'agent-on-a'),
    await startAgentWorker(dir, agentEnv(nodes[1]!), 'agent-on-b'),
  ];
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.leave()));
  await Promise.allSettled((workers ?? []).map((w) => w.stop('SIGKILL')));
  await Promise.allSettled([edge?.stop(), ...(nodes ?? []).map((n) => n.stop()), openai?.close()]);
  await redis?.stop();
  await dispose();
});

/** A caller with a token from the edge, joining through `node`, greeted by the agent. */
async function callVia(node: LiveKit): Promise<CallClient> {
  const res = await fetch(`${edge.url}/token`, {
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
  const { pid } = JSON.parse(readFileSync(join(hooksDir, `${room}.registered.json`), 'utf8')) as {
    pid: number;
  };
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  const worker = workers.find((w) => w.proc.child.pid === ppid);
  if (!worker) throw new Error(`job ${pid} of ${room} belongs to no worker`);
  return worker;
}

const agentsIn = async (room: string) =>
  (await rooms.listParticipants(room)).filter((p) => Number(p.kind) === 4).length;

describe.skipIf(!bin || !redisBin)('two LiveKit nodes sharing Redis, two agent workers', () => {
  it('dispatches every call exactly once, keeps one worker’s calls when the other is killed, and sends new calls to the survivor', async () => {
    const calls = [
      await callVia(nodes[0]!),
      await callVia(nodes[1]!),
      await callVia(nodes[0]!),
      await callVia(nodes[1]!),
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
          const view = (await (
            await fetch(`${edge.url}/calls/${c.roomName}`, {
              headers: { authorization: `Bearer ${edge.adminKey}` },
            })
          ).json()) as { status: string; end_reason: string };
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
    const after = [await callVia(nodes[0]!), await callVia(nodes[1]!)];
    for (const c of after) {
      expect(await agentsIn(c.roomName)).toBe(1);
      expect(workerOf(c.roomName)).toBe(survivor);
    }
  });
});
