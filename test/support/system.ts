import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RoomServiceClient } from 'livekit-server-sdk';
import { startAgentWorker, type AgentWorker } from './agent-worker.ts';
import { CallClient } from './call-client.ts';
import { startEdge, type Edge } from './edge-dev.ts';
import { DEV_KEY, DEV_SECRET, startLiveKit, type LiveKit } from './livekit-server.ts';
import { startOpenAIStandIn, type StandIn } from './openai-stand-in.ts';
import { freePort, waitFor } from './processes.ts';
import { redisServerPath, startRedis, type Redis } from './redis-server.ts';

export type SystemOptions = {
  agentEnv?: Record<string, string>;
  /** A function when they depend on what the file started first (a proxy, an identity provider). */
  edgeVars?: Record<string, string> | (() => Record<string, string>);
  departureTimeout?: number;
  /** LiveKit nodes sharing one Redis (LiveKit's multi-node routing); the edge talks to the first. */
  livekitNodes?: number;
  /** Whether to start the default agent worker (`system.agent`); a file may start its own. */
  agent?: boolean;
};

/**
 * The whole system on loopback: the OpenAI stand-in, the real LiveKit server (webhooks to the
 * edge), the edge under wrangler dev with a fresh D1, and the built agent worker in start mode.
 */
/** The edge's backstop grace in these systems unless a file sets its own. */
export const E2E_BACKSTOP_GRACE_SECONDS = 20;

export class System {
  readonly dir = mkdtempSync(join(tmpdir(), 'lkvc-e2e-'));
  readonly hooksDir = join(this.dir, 'hooks');
  openai!: StandIn;
  livekit!: LiveKit;
  /** Every LiveKit node; `livekit` is the first. */
  livekits: LiveKit[] = [];
  redis: Redis | undefined;
  edge!: Edge;
  agent!: AgentWorker;
  rooms!: RoomServiceClient;
  readonly extraAgents: AgentWorker[] = [];
  /** Callers joined through `backendCaller`, left when the system stops. */
  readonly callers: CallClient[] = [];

  readonly #bin: string;
  readonly #opts: SystemOptions;
  #edgeVars: Record<string, string> = {};

  constructor(bin: string, opts: SystemOptions = {}) {
    this.#bin = bin;
    this.#opts = opts;
  }

  async start(): Promise<this> {
    this.openai = await startOpenAIStandIn();
    const edgePort = await freePort();
    const nodes = this.#opts.livekitNodes ?? 1;
    if (nodes > 1) {
      const redisBin = redisServerPath();
      if (!redisBin) throw new Error('several LiveKit nodes need redis-server');
      this.redis = await startRedis(redisBin, this.dir);
    }
    for (let n = 0; n < nodes; n++)
      this.livekits.push(
        await startLiveKit(this.#bin, nodes > 1 ? join(this.dir, `node-${n}`) : this.dir, {
          webhookUrl: `http://127.0.0.1:${edgePort}/livekit/webhook`,
          departureTimeout: this.#opts.departureTimeout,
          redis: this.redis?.address,
        }),
      );
    this.livekit = this.livekits[0]!;
    this.rooms = new RoomServiceClient(this.livekit.httpUrl, DEV_KEY, DEV_SECRET);
    this.#edgeVars = {
      LIVEKIT_URL: this.livekit.url,
      LIVEKIT_API_KEY: DEV_KEY,
      LIVEKIT_API_SECRET: DEV_SECRET,
      AUTH_ALLOW_ANONYMOUS: 'true',
      // The agent ends a call at its limit after a goodbye; the edge's deadline alarm only after
      // this grace (60 s in production), so the two never race in a test about the agent's end.
      BACKSTOP_GRACE_SECONDS: String(E2E_BACKSTOP_GRACE_SECONDS),
      // Every caller here is anonymous from 127.0.0.1, one "caller" to the open-call cap, which
      // test/edge/open-calls.test.ts covers; here it would only couple the tests to each other.
      MAX_OPEN_CALLS_PER_CALLER: '0',
      ...(typeof this.#opts.edgeVars === 'function' ? this.#opts.edgeVars() : this.#opts.edgeVars),
    };
    this.edge = await startEdge(join(this.dir, 'edge'), this.#edgeVars, edgePort);
    if (this.#opts.agent !== false) this.agent = await this.startAgent('agent');
    return this;
  }

  /** The edge back after `edge.stop()`: the same port, vars and local D1. */
  async restartEdge(): Promise<Edge> {
    await this.edge.stop();
    const port = Number(new URL(this.edge.url).port);
    this.edge = await startEdge(join(this.dir, 'edge'), this.#edgeVars, port);
    return this.edge;
  }

  agentEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      LIVEKIT_URL: this.livekit.url,
      LIVEKIT_API_KEY: DEV_KEY,
      LIVEKIT_API_SECRET: DEV_SECRET,
      OPENAI_API_KEY: 'sk-local-stand-in',
      OPENAI_BASE_URL: this.openai.url,
      EDGE_URL: this.edge.url,
      AGENT_HOOKS_MODULE: resolve(import.meta.dirname, 'e2e-hooks.ts'),
      E2E_HOOKS_DIR: this.hooksDir,
      // Each system's reports wait in its own outbox, not in the user's state dir.
      REPORT_OUTBOX_DIR: join(this.dir, 'outbox'),
      CLEANUP_BUDGET_MS: '6000',
      END_STEP_TIMEOUT_MS: '4000',
      HOOK_TIMEOUT_MS: '2000',
      IDLE_PROMPT_SECONDS: '0',
      // Calls-based load: on a busy 2-core CI box the stock CPU load makes LiveKit drop dispatches.
      AGENT_MAX_CONCURRENT_CALLS: '20',
      ...this.#opts.agentEnv,
      ...extra,
    };
  }

  async startAgent(
    name: string,
    extra: Record<string, string> = {},
    mode: 'start' | 'dev' = 'start',
  ): Promise<AgentWorker> {
    const worker = await startAgentWorker(this.dir, this.agentEnv(extra), name, undefined, mode);
    if (name !== 'agent') this.extraAgents.push(worker);
    return worker;
  }

  /** The ledger's view of a call, through the edge's own API (admin). */
  async call(room: string): Promise<any> {
    const res = await fetch(`${this.edge.url}/calls/${room}`, {
      headers: { authorization: `Bearer ${this.edge.adminKey}` },
    });
    return res.json();
  }

  /** POST /calls/:room/end for everyone, as the caller does (with its own LiveKit token). */
  endForAll(caller: { roomName: string; participantToken: string }): Promise<Response> {
    return this.#end(caller.roomName, 'end_for_all', caller.participantToken);
  }

  /** POST /calls/:room/end as an operator (the admin key), as the console and curl do. */
  endAsAdmin(room: string, mode: 'end_for_all' | 'remove_agent'): Promise<Response> {
    return this.#end(room, mode, this.edge.adminKey);
  }

  #end(room: string, mode: 'end_for_all' | 'remove_agent', credential: string) {
    return fetch(`${this.edge.url}/calls/${room}/end`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` },
      body: JSON.stringify({ mode }),
    });
  }

  /** The ledger's view once the agent's report has landed. */
  reportedCall(room: string): Promise<any> {
    return waitFor(
      `report for ${room}`,
      async () => {
        const view = await this.call(room);
        return view.report ? view : undefined;
      },
      { timeoutMs: 30_000 },
    );
  }

  /** The ledger's view once the call is closed, by whichever source closes it. */
  endedCall(room: string, what = 'ledger closed'): Promise<any> {
    return waitFor(
      what,
      async () => {
        const view = await this.call(room);
        return view.status === 'ended' ? view : undefined;
      },
      { timeoutMs: 30_000 },
    );
  }

  /**
   * The ledger's view once it records `reason`, or as it stands after 30 s (for the assertion's
   * message). An end inferred from the room's deletion (LiveKit's room_finished, the agent's
   * room_deleted) may show for a moment before the end that caused it replaces it (docs/api.md).
   */
  async endedCallAs(room: string, reason: string): Promise<any> {
    await this.endedCall(room);
    return waitFor(`the ledger's end reason ${reason}`, async () => {
      const view = await this.call(room);
      return view.end_reason === reason && view;
    }).catch(() => this.call(room));
  }

  async roomExists(room: string): Promise<boolean> {
    return (await this.rooms.listRooms([room])).length > 0;
  }

  /**
   * Whether LiveKit stops listing the room within a few seconds. It drops a deleted room's state
   * just after disconnecting everyone, so a caller's ROOM_DELETED can arrive while ListRooms still
   * shows it for a moment (seen on a busy CI box).
   */
  async roomGone(room: string): Promise<boolean> {
    return waitFor(`room ${room} gone`, async () => !(await this.roomExists(room)), {
      timeoutMs: 10_000,
    }).then(
      () => true,
      () => false,
    );
  }

  hookMarker(room: string, hook: string): { pid: number; at: number; reason?: string } | undefined {
    const file = join(this.hooksDir, `${room}.${hook}.json`);
    return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
  }

  /**
   * A caller a backend set up (app key): the room and identity it chose, per-call agent settings
   * in the dispatch metadata, and optionally another agent; joined, not yet greeted.
   */
  async backendCaller(
    room: string,
    { metadata = {}, agentName }: { metadata?: Record<string, unknown>; agentName?: string } = {},
  ): Promise<CallClient> {
    const client = new CallClient();
    this.callers.push(client);
    await client.join(this.edge.url, `Bearer ${this.edge.appKey}`, {
      room_name: room,
      participant_identity: `user-${room}`,
      room_config: {
        agents: [
          { ...(agentName && { agent_name: agentName }), metadata: JSON.stringify(metadata) },
        ],
      },
    });
    return client;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.callers.map((c) => c.leave()));
    await Promise.allSettled([
      this.agent?.stop('SIGKILL'),
      ...this.extraAgents.map((a) => a.stop('SIGKILL')),
    ]);
    await Promise.allSettled([
      this.edge?.stop(),
      ...this.livekits.map((n) => n.stop()),
      this.openai?.close(),
    ]);
    await this.redis?.stop();
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
