import { AgentServer, initializeLogger, ServerOptions } from '@livekit/agents';
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CallCapacity } from '../../agent/process/capacity.ts';
import {
  chooseJobStartsDir,
  clearJobStarts,
  JOB_STARTS_DIR_ENV,
} from '../../agent/process/job-starts.ts';

/**
 * What agent/process/capacity.ts and job-starts.ts rely on in agents-js's worker: a job is listed
 * in `AgentServer.activeJobs` from before its process starts it until that process has exited.
 * Shown on the real server's own process pool, with real job processes running a fixture entry
 * that marks its start as agent/job.ts's does.
 */
const agentsDist = dirname(createRequire(import.meta.url).resolve('@livekit/agents'));
const FIXTURE = resolve(import.meta.dirname, 'fixtures/short-call-agent.ts');

type Executor = { runningJob?: { job: { id: string } }; proc: ChildProcess };
type Pool = {
  readonly processes: Executor[];
  start(): void;
  launchJob(info: unknown): Promise<void>;
  close(): Promise<void>;
};

let pool: Pool | undefined;
afterAll(async () => {
  await pool?.close();
  clearJobStarts();
  delete process.env[JOB_STARTS_DIR_ENV];
});

/** The real server's (private) process pool, caught as its public `activeJobs` reads it. */
async function serverWithItsPool(): Promise<{ server: AgentServer; pool: Pool }> {
  const { ProcPool } = (await import(pathToFileURL(join(agentsDist, 'ipc/proc_pool.js')).href)) as {
    ProcPool: { prototype: Pool };
  };
  const processes = Object.getOwnPropertyDescriptor(ProcPool.prototype, 'processes')!;
  let caught: Pool | undefined;
  const catchPool = (p: Pool) => (caught ??= p);
  Object.defineProperty(ProcPool.prototype, 'processes', {
    ...processes,
    get(this: Pool) {
      catchPool(this);
      return processes.get!.call(this);
    },
  });
  try {
    const server = new AgentServer(
      new ServerOptions({
        agent: FIXTURE,
        wsURL: 'ws://127.0.0.1:1',
        apiKey: 'k',
        apiSecret: 's'.repeat(32),
        numIdleProcesses: 2,
        initializeProcessTimeout: 20_000,
        shutdownProcessTimeout: 5_000,
      }),
    );
    void server.activeJobs;
    return { server, pool: caught! };
  } finally {
    Object.defineProperty(ProcPool.prototype, 'processes', processes);
  }
}

/** What agents-js launches once LiveKit assigns an accepted job. */
const runningJob = (id: string) => ({
  acceptArguments: { name: '', identity: `agent-${id}`, metadata: '' },
  job: { id, room: { name: `room-${id}`, sid: `RM_${id}` }, metadata: '' },
  url: 'ws://127.0.0.1:1',
  token: 'unused',
  workerId: 'W_contract',
});

const listed = (server: AgentServer) => server.activeJobs.map((j) => j.job.id);

async function until(ok: () => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("agents-js's job list, as the call cap relies on it", () => {
  it('a job is listed from its launch until its process has exited; short calls that came and went unseen leave the cap free for the next', async () => {
    initializeLogger({ pretty: false, level: 'fatal' });
    // As main.ts does: the job processes the pool forks from here on inherit the directory.
    const dir = chooseJobStartsDir()!;
    const caught = await serverWithItsPool();
    const server = caught.server;
    pool = caught.pool;
    expect(pool).toBeDefined();
    pool.start();
    const capacity = new CallCapacity(2, Date.now, dir);
    await capacity.load(server);

    const answers: string[] = [];
    const request = (id: string) => ({
      id,
      accept: async () => void answers.push(`${id} accepted`),
      reject: async () => void answers.push(`${id} rejected`),
    });
    await capacity.request(request('AJ_short1'));
    await capacity.request(request('AJ_short2'));
    // Launched as agents-js launches them after LiveKit's assignment, and run to their end with
    // nothing asking the cap in between (as between two of agents-js's load reports).
    for (const id of ['AJ_short1', 'AJ_short2']) {
      await pool.launchJob(runningJob(id));
      expect(listed(server)).toContain(id); // listed before its process has had the job
      const proc = pool.processes.find((p) => p.runningJob?.job.id === id)!.proc;
      await until(() => !listed(server).includes(id), 20_000);
      expect(proc.exitCode ?? proc.signalCode).not.toBeNull(); // unlisted only once it exited
    }
    await capacity.request(request('AJ_next'));
    expect(answers).toEqual(['AJ_short1 accepted', 'AJ_short2 accepted', 'AJ_next accepted']);
    expect(readdirSync(dir)).toEqual([]); // the worker read and cleared both marks
  }, 60_000);
});
