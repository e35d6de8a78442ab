import { readFileSync } from 'node:fs';
import { AgentDispatchClient, TokenVerifier } from 'livekit-server-sdk';
import { afterAll, describe, expect, it } from 'vitest';
import { CallClient } from '../support/call-client.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { DEV_KEY, DEV_SECRET } from '../support/livekit-server.ts';
import { waitFor } from '../support/processes.ts';

/**
 * The edge against the real LiveKit server when it fails or has already moved on: a server that
 * stops answering, rooms that are gone, removing only the agent, racing dispatches, and tokens
 * that are never used.
 */
const LIVEKIT_TIMEOUT_MS = 2_000;
const TOKEN_TTL_SECONDS = 10;
const clients: CallClient[] = [];

const system = systemForThisFile('edge-against-LiveKit tests', {
  departureTimeout: 2,
  edgeVars: {
    LIVEKIT_TIMEOUT_MS: String(LIVEKIT_TIMEOUT_MS),
    TOKEN_TTL_SECONDS: String(TOKEN_TTL_SECONDS),
    // No test here has the agent end a call at its limit (see system.ts): unused tokens close as
    // soon as their TTL has passed.
    BACKSTOP_GRACE_SECONDS: '0',
  },
});
afterAll(async () => {
  process.kill(system.livekit?.proc.child.pid ?? 0, 'SIGCONT');
  await Promise.allSettled(clients.map((c) => c.leave()));
});

const admin = () => ({
  'content-type': 'application/json',
  authorization: `Bearer ${system.edge.adminKey}`,
});
const post = (path: string, body: unknown, headers: Record<string, string> = admin()) =>
  fetch(`${system.edge.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
const ledgerJson = async (room: string) =>
  (await fetch(`${system.edge.url}/calls/${room}`, { headers: admin() })).text();

async function greetedCaller(): Promise<CallClient> {
  const client = new CallClient();
  clients.push(client);
  await client.join(system.edge.url, '');
  await client.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
  return client;
}

/** Pauses the LiveKit server (SIGSTOP) while `fn` runs, and resumes it (SIGCONT) after. */
/** The process's state letter from /proc (`T`: stopped). */
const procState = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0];

async function whileLiveKitIsFrozen<T>(fn: () => Promise<T>): Promise<T> {
  const pid = system.livekit.proc.child.pid!;
  process.kill(pid, 'SIGSTOP');
  try {
    // Once, in CI, the edge's DeleteRoom was answered right after the SIGSTOP (cause not found):
    // the test goes on only once the kernel says the server is stopped.
    await waitFor('LiveKit stopped (SIGSTOP)', async () => procState(pid) === 'T', {
      timeoutMs: 5_000,
      intervalMs: 10,
    });
    return await fn();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

describe.skipIf(system.skipped)('the edge against the real LiveKit server', () => {
  it('LiveKit stops answering: end-call and dispatch answer 503 within LIVEKIT_TIMEOUT_MS, the ledger untouched; after it resumes the end succeeds', async () => {
    const c = await greetedCaller();
    const before = await ledgerJson(c.roomName);
    const answers = await whileLiveKitIsFrozen(async () => {
      const timed = async (path: string, body: unknown) => {
        const started = Date.now();
        const res = await post(path, body);
        return {
          status: res.status,
          retryAfter: res.headers.get('retry-after'),
          body: await res.json(),
          ms: Date.now() - started,
        };
      };
      const end = await timed(`/calls/${c.roomName}/end`, { mode: 'end_for_all' });
      const dispatch = await timed(`/calls/${c.roomName}/dispatch`, {});
      return { end, dispatch, ledger: await ledgerJson(c.roomName) };
    });
    for (const a of [answers.end, answers.dispatch]) {
      expect(a.status).toBe(503);
      expect((a.body as { error: { code: string } }).error.code).toMatch(
        /^livekit_(timeout|unreachable)$/,
      );
      expect(a.retryAfter).toBe('5');
      // Bounded by LIVEKIT_TIMEOUT_MS (the SDK alone would wait far longer), with room for a busy box.
      expect(a.ms).toBeLessThan(LIVEKIT_TIMEOUT_MS + 3_000);
    }
    expect(answers.ledger).toBe(before);
    const retry = await post(`/calls/${c.roomName}/end`, { mode: 'end_for_all' });
    expect(retry.status).toBe(200);
    expect(((await retry.json()) as { call: { end_reason: string } }).call.end_reason).toBe(
      'api_end_call',
    );
    // The room is gone on the server. (The client, whose connection stalled with the frozen server,
    // may still be reconnecting: its own disconnect is not what this test is about.)
    await waitFor('LiveKit deleted the room', async () => !(await system.roomExists(c.roomName)), {
      timeoutMs: 15_000,
      intervalMs: 250,
    });
  });

  it('a room LiveKit never had (the token was never used): ending it answers 200 with the ended call', async () => {
    const token = (await (
      await post('/token', {}, { 'content-type': 'application/json' })
    ).json()) as { room_name: string };
    expect(await system.roomGone(token.room_name)).toBe(true);
    const res = await post(`/calls/${token.room_name}/end`, { mode: 'end_for_all' });
    expect(res.status).toBe(200);
    expect(
      ((await res.json()) as { call: { status: string; end_reason: string } }).call,
    ).toMatchObject({
      status: 'ended',
      end_reason: 'api_end_call',
    });
  });

  it('LiveKit makes the token’s call facts the room’s metadata, and the call’s object takes the call from them (its webhooks), not from the archive', async () => {
    const c = await greetedCaller();
    const [room] = await system.rooms.listRooms([c.roomName]);
    const claims = await new TokenVerifier(DEV_KEY, DEV_SECRET).verify(c.participantToken);
    expect(room?.metadata).toBeTruthy();
    expect(room!.metadata).toBe(claims.roomConfig!.metadata);
    expect(JSON.parse(room!.metadata)).toMatchObject({
      call: { v: 1, agent_name: 'voice-agent', dispatch: claims.roomConfig!.agents![0]!.metadata },
    });
    const edgeLog = () => readFileSync(system.edge.proc.logFile, 'utf8');
    await waitFor('the call object took the call', async () => edgeLog().includes(c.roomName), {
      timeoutMs: 10_000,
      intervalMs: 100,
    });
    const took = edgeLog()
      .split('\n')
      .filter((l) => l.includes('call object: took the call') && l.includes(c.roomName));
    expect(took).toHaveLength(1);
    expect(took[0]).toContain('"from":"room_metadata"');
    await c.leave();
  });

  it('a room LiveKit already closed (everyone left): ending it answers 200 with the call, never a 5xx', async () => {
    const c = await greetedCaller();
    await c.leave();
    await waitFor('LiveKit closed the room', async () => !(await system.roomExists(c.roomName)), {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const res = await post(`/calls/${c.roomName}/end`, { mode: 'end_for_all' });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { call: { status: string } }).call.status).toBe('ended');
  });

  it('remove_agent: the agent leaves and reports api_remove_agent, the caller stays, a second remove is a no-op', async () => {
    const c = await greetedCaller();
    const first = await post(`/calls/${c.roomName}/end`, { mode: 'remove_agent' });
    expect(first.status).toBe(200);
    const firstBody = (await first.json()) as {
      removed_agents: string[];
      call: { agent_removed_at: string; status: string };
    };
    expect(firstBody.removed_agents).toHaveLength(1);
    expect(firstBody.call.agent_removed_at).toBeTruthy();
    await c.waitForEvent(
      'participant-left',
      (d) => d.identity === firstBody.removed_agents[0],
      15_000,
    );
    const marker = await waitFor('hooks ran', async () => system.hookMarker(c.roomName, 'ran'));
    expect(marker.reason).toBe('api_remove_agent');
    const call = await system.reportedCall(c.roomName);
    expect(call.report.end_reason).toBe('api_remove_agent');
    expect(c.room.isConnected).toBe(true);
    expect(await system.roomExists(c.roomName)).toBe(true);
    const second = await post(`/calls/${c.roomName}/end`, { mode: 'remove_agent' });
    const secondBody = (await second.json()) as {
      removed_agents?: string[];
      call: { agent_removed_at: string };
    };
    expect(second.status).toBe(200);
    expect(secondBody.removed_agents ?? []).toEqual([]);
    expect(secondBody.call.agent_removed_at).toBe(firstBody.call.agent_removed_at);
    await c.leave();
  });

  it('two concurrent dispatches into a room made through RoomService put exactly one agent in it', async () => {
    const room = `sip-${Date.now().toString(36)}`;
    await system.rooms.createRoom({ name: room, emptyTimeout: 60 });
    const [a, b] = await Promise.all([
      post(`/calls/${room}/dispatch`, {}),
      post(
        `/calls/${room}/dispatch`,
        {},
        { ...admin(), authorization: `Bearer ${system.edge.appKey}` },
      ),
    ]);
    const bodies = (await Promise.all([a.json(), b.json()])) as {
      dispatch_id: string;
      created: boolean;
    }[];
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    expect(bodies[0]!.dispatch_id).toBe(bodies[1]!.dispatch_id);
    const dispatches = await new AgentDispatchClient(
      system.livekit.httpUrl,
      DEV_KEY,
      DEV_SECRET,
    ).listDispatch(room);
    // LiveKit keeps its own automatic dispatch (agent name "") for every room: count ours.
    expect(dispatches.filter((d) => d.agentName === 'voice-agent')).toHaveLength(1);
    await waitFor(
      'the agent joined',
      async () => (await system.rooms.listParticipants(room)).some((p) => Number(p.kind) === 4),
      { timeoutMs: 30_000 },
    );
    expect(
      (await system.rooms.listParticipants(room)).filter((p) => Number(p.kind) === 4),
    ).toHaveLength(1);
    await system.rooms.deleteRoom(room);
  });

  it('a token never used closes as not_joined once its TTL has passed, and GET /calls can leave it out', async () => {
    const token = (await (
      await post('/token', {}, { 'content-type': 'application/json' })
    ).json()) as { room_name: string };
    const expired = Date.now() + TOKEN_TTL_SECONDS * 1000 + 500;
    await waitFor('the token expired', async () => Date.now() > expired, {
      timeoutMs: 20_000,
      intervalMs: 250,
    });
    expect((await fetch(`${system.edge.url}/__scheduled?cron=*+*+*+*+*`)).status).toBe(200);
    const call = await system.endedCall(token.room_name, 'ledger closed by the cron');
    expect(call).toMatchObject({
      end_reason: 'not_joined',
      end_source: 'cron',
      ended_by: 'system',
    });
    const ended = (await (
      await fetch(`${system.edge.url}/calls?status=ended&limit=100`, { headers: admin() })
    ).json()) as { calls: { room: string }[] };
    const unused = (await (
      await fetch(`${system.edge.url}/calls?status=not_joined&limit=100`, { headers: admin() })
    ).json()) as { calls: { room: string }[] };
    expect(ended.calls.map((x) => x.room)).not.toContain(token.room_name);
    expect(unused.calls.map((x) => x.room)).toContain(token.room_name);
  });
});
