// npm run bench:agent: on the real LiveKit server, (1) time from an end trigger (the user hangs up) to
// the job process's exit with five end-of-call hooks, one of which hangs, for our lifecycle and for a
// stock agent using ctx.shutdown + addShutdownCallback; (2) RSS of idle, warmed job processes.
import { dispose } from '@livekit/rtc-node';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';
import { startAgentWorker, type AgentWorker } from '../support/agent-worker.ts';
import { CallClient } from '../support/call-client.ts';
import { DEV_KEY, DEV_SECRET, startLiveKit } from '../support/livekit-server.ts';
import { startOpenAIStandIn } from '../support/openai-stand-in.ts';
import { waitFor } from '../support/processes.ts';
import { pidAlive } from '../support/system.ts';
import { benchAgentEnv, percentile, prepareLiveKitBench, printTable } from './table.ts';
import { sealedDispatchFor } from '../support/dispatch-metadata.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CAP_MS = 30_000;
const ROOT = resolve(import.meta.dirname, '../..');

const bin = prepareLiveKitBench('bench:agent');
const dir = mkdtempSync(join(tmpdir(), 'lkvc-bench-agent-'));
const openai = await startOpenAIStandIn();
const livekit = await startLiveKit(bin, dir);
const common = benchAgentEnv(livekit.url, openai.url);

type Variant = { label: string; agentName: string; hooksDir: string; worker: AgentWorker };
const variants: Variant[] = [];
async function variant(
  label: string,
  agentName: string,
  env: Record<string, string>,
  entry?: string,
) {
  const hooksDir = join(dir, agentName);
  const worker = await startAgentWorker(
    dir,
    { ...common, AGENT_NAME: agentName, E2E_HOOKS_DIR: hooksDir, ...env },
    agentName,
    entry,
  );
  variants.push({ label, agentName, hooksDir, worker });
}
await variant('ours: lifecycle, 5 hooks (1 hangs, cut at HOOK_TIMEOUT_MS=2000)', 'ours', {
  AGENT_HOOKS_MODULE: join(ROOT, 'test/bench/bench-hooks.ts'),
  HOOK_TIMEOUT_MS: '2000',
  IDLE_PROMPT_SECONDS: '0',
  AGENT_MAX_CONCURRENT_CALLS: '20',
});
await variant('ours: lifecycle, 5 hooks (none hang)', 'ours-ok', {
  AGENT_HOOKS_MODULE: join(ROOT, 'test/bench/bench-hooks.ts'),
  BENCH_HANG: '0',
  IDLE_PROMPT_SECONDS: '0',
  AGENT_MAX_CONCURRENT_CALLS: '20',
});
const stockEntry = join(ROOT, 'test/bench/stock-agent.ts');
await variant(
  'stock: ctx.shutdown on hang-up + 5 addShutdownCallback (1 hangs)',
  'stock-hang',
  { STOCK_HOOKS: '5', STOCK_HANG: '1', STOCK_SHUTDOWN_ON_LEAVE: '1' },
  stockEntry,
);
await variant(
  'stock: ctx.shutdown on hang-up + 5 addShutdownCallback (none hang)',
  'stock-ok',
  { STOCK_HOOKS: '5', STOCK_SHUTDOWN_ON_LEAVE: '1' },
  stockEntry,
);

function childRss(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'rss=', '--ppid', String(pid)], { encoding: 'utf8' })
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((kb) => Number(kb) / 1024);
  } catch {
    return [];
  }
}
// Idle job processes are forked and warmed at start; read them once they exist and have settled.
const rssRows: (string | number)[][] = [];
for (const v of [variants[0]!, variants[3]!]) {
  const rss = await waitFor(`${v.agentName} idle job processes`, async () => {
    const r = childRss(v.worker.proc.child.pid!);
    return r.length >= 1 ? r : undefined;
  });
  await new Promise((r) => setTimeout(r, 3000));
  const settled = childRss(v.worker.proc.child.pid!);
  rssRows.push([
    v.agentName === 'ours' ? 'ours (agent/job.ts)' : 'stock minimal agent',
    settled.length,
    settled.map((m) => m.toFixed(0)).join(', '),
    (percentile(settled, 50) || rss[0]!).toFixed(0),
  ]);
}

async function oneCall(v: Variant, i: number, settleMs: number): Promise<number | undefined> {
  const room = `bench-${v.agentName}-${i}-${settleMs}-${Date.now().toString(36)}`;
  const at = new AccessToken(DEV_KEY, DEV_SECRET, { identity: `caller-${i}`, ttl: 600 });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true });
  at.roomConfig = new RoomConfiguration({
    agents: [
      new RoomAgentDispatch({
        agentName: v.agentName,
        metadata: await sealedDispatchFor(room, `caller-${i}`),
      }),
    ],
  });
  const client = new CallClient();
  await client.connect(livekit.url, await at.toJwt(), room, `caller-${i}`);
  const marker = join(v.hooksDir, `${room}.ran.json`);
  await waitFor(`${room} job running`, async () => existsSync(marker), { timeoutMs: 30_000 });
  await client.waitForEvent('participant-joined', (d) => d.identity.startsWith('agent-'), 30_000);
  const { pid } = JSON.parse(readFileSync(marker, 'utf8')) as { pid: number };
  // A settled call (our greeting has played), or a hang-up right after the agent joined.
  await new Promise((r) => setTimeout(r, settleMs));
  const hungUpAt = Date.now();
  await client.leave();
  try {
    await waitFor('job exit', async () => !pidAlive(pid), { timeoutMs: CAP_MS, intervalMs: 10 });
    return Date.now() - hungUpAt;
  } catch {
    return undefined;
  }
}

const exitRows: (string | number)[][] = [];
for (const [when, settleMs] of [
  ['3 s after the agent joined', 3000],
  ['as soon as the agent joined', 0],
] as const) {
  for (const v of variants) {
    // Calls of one variant run side by side: a stock job that never exits must not stall the others.
    const results = await Promise.all(
      Array.from({ length: RUNS }, (_, i) => oneCall(v, i, settleMs)),
    );
    const done = results.filter((r): r is number => r !== undefined);
    exitRows.push([
      v.label,
      when,
      `${done.length}/${RUNS}`,
      done.length ? percentile(done, 50) : `> ${CAP_MS / 1000} s`,
      done.length ? percentile(done, 90) : `> ${CAP_MS / 1000} s`,
    ]);
  }
}

for (const v of variants) await v.worker.stop('SIGKILL');
await livekit.stop();
await openai.close();
await dispose();

printTable(
  'Hang-up → job process exit (bench:agent)',
  ['agent', 'user hangs up', 'exited', 'median ms', 'p90 ms'],
  exitRows,
);
printTable(
  'Idle warmed job processes (bench:agent)',
  ['agent', 'processes', 'RSS each (MiB)', 'median MiB'],
  rssRows,
);
