// npm run bench:lifecycle: the whole system on the real LiveKit server, ≥ 10 calls per row:
// dispatch → agent joined; the edge's end-call → every participant disconnected, beside a bare
// DeleteRoom on the same server; user hang-up → agent job exit, ours beside a stock minimal agent
// as the starter ships it and the same with ctx.shutdown() on hang-up, every variant with its calls
// side by side; and the call page in Chromium: click Call → the agent's audio playing.
import { dispose } from '@livekit/rtc-node';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startAgentWorker } from '../support/agent-worker.ts';
import { chromiumPath, HOW_TO_GET_CHROMIUM, openCallPage } from '../support/browser.ts';
import { CallClient } from '../support/call-client.ts';
import { waitFor } from '../support/processes.ts';
import { renderSilence } from '../support/speech.ts';
import { pidAlive, System } from '../support/system.ts';
import { percentile, prepareLiveKitBench, printTable } from './table.ts';

const CALLS = Math.max(10, Number(process.env.BENCH_CALLS ?? 10));
const ROOT = resolve(import.meta.dirname, '../..');
const bin = prepareLiveKitBench('bench:lifecycle');
// LiveKit's default departure timeout (20 s): the stock agent's linger depends on it.
const system = await new System(bin, {
  edgeVars: { AGENT_ALLOWED_NAMES: 'voice-agent,stock-agent,stock-shutdown' },
}).start();
const stockEntry = join(ROOT, 'test/bench/stock-agent.ts');
const stockWorkers = [
  await startAgentWorker(
    system.dir,
    system.agentEnv({ AGENT_NAME: 'stock-agent', STOCK_GREET: '1' }),
    'stock-agent',
    stockEntry,
  ),
  await startAgentWorker(
    system.dir,
    system.agentEnv({
      AGENT_NAME: 'stock-shutdown',
      STOCK_GREET: '1',
      STOCK_SHUTDOWN_ON_LEAVE: '1',
    }),
    'stock-shutdown',
    stockEntry,
  ),
];

async function call(
  agentName?: string,
): Promise<{ client: CallClient; requestedAt: number; joinedMs: number }> {
  const client = new CallClient();
  const requestedAt = Date.now();
  await client.join(system.edge.url, `Bearer ${system.edge.appKey}`, {
    participant_identity: `bench-${Math.random().toString(36).slice(2)}`,
    ...(agentName && { room_config: { agents: [{ agent_name: agentName }] } }),
  });
  const joined = await client.waitForEvent(
    'participant-joined',
    (d) => d.identity.startsWith('agent-'),
    30_000,
  );
  // A settled call: the greeting has been delivered before anything ends it.
  await client.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
  return { client, requestedAt, joinedMs: joined.at - requestedAt };
}

const dispatch: number[] = [];
const endCall: number[] = [];
const bareDelete: number[] = [];
for (let i = 0; i < CALLS; i++) {
  const a = await call();
  dispatch.push(a.joinedMs);
  let t = Date.now();
  const res = await fetch(`${system.edge.url}/calls/${a.client.roomName}/end`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${system.edge.adminKey}`,
      'content-type': 'application/json',
    },
    body: '{"mode":"end_for_all"}',
  });
  if (res.status !== 200) throw new Error(`end-call answered ${res.status}`);
  await a.client.waitForDisconnect();
  await waitFor(
    'room empty',
    async () => (await system.rooms.listParticipants(a.client.roomName)).length === 0,
    { intervalMs: 10 },
  );
  endCall.push(Date.now() - t);

  const b = await call();
  t = Date.now();
  await system.rooms.deleteRoom(b.client.roomName);
  await b.client.waitForDisconnect();
  await waitFor(
    'room empty',
    async () => (await system.rooms.listParticipants(b.client.roomName)).length === 0,
    { intervalMs: 10 },
  );
  bareDelete.push(Date.now() - t);
}

/** CALLS hang-ups side by side for one agent; the clock runs from the hang-up to the job's exit. */
async function hangUps(agentName?: string): Promise<number[]> {
  return Promise.all(
    Array.from({ length: CALLS }, async () => {
      const c = await call(agentName);
      const marker = agentName
        ? join(system.hooksDir, `${c.client.roomName}.ran.json`)
        : join(system.hooksDir, `${c.client.roomName}.registered.json`);
      await waitFor('job running', async () => existsSync(marker));
      const { pid } = JSON.parse(readFileSync(marker, 'utf8')) as { pid: number };
      const t = Date.now();
      await c.client.leave();
      await waitFor('job exit', async () => !pidAlive(pid), { timeoutMs: 90_000, intervalMs: 20 });
      return Date.now() - t;
    }),
  );
}
const hangUpOurs = await hangUps();
const hangUpStock = await hangUps('stock-agent');
const hangUpStockShutdown = await hangUps('stock-shutdown');

// The call page in Chromium: click Call → the agent's audio element is playing.
const pageToAudio: number[] = [];
if (chromiumPath()) {
  const silence = renderSilence(join(system.dir, 'speech'), 60);
  for (let i = 0; i < Math.min(CALLS, 10); i++) {
    const page = await openCallPage(`${system.edge.url}/`, { micWav: silence });
    const clicked = Date.now();
    await page.page.getByRole('button', { name: 'Call', exact: true }).click();
    await page.page.locator('#app[data-agent-audio=playing]').waitFor({ timeout: 30_000 });
    pageToAudio.push(Date.now() - clicked);
    await page.page.getByRole('button', { name: 'Hang up' }).click();
    await page.close();
  }
} else console.warn(`no Chromium: the call page row is skipped (${HOW_TO_GET_CHROMIUM})`);

await Promise.all(stockWorkers.map((w) => w.stop('SIGKILL')));
await system.stop();
await dispose();

const row = (label: string, v: number[]) => [label, v.length, percentile(v, 50), percentile(v, 90)];
printTable(
  'Call lifecycle on the real LiveKit server (bench:lifecycle)',
  ['measure', 'calls', 'median ms', 'p90 ms'],
  [
    row('token request → agent joined (dispatch in the token)', dispatch),
    row('POST /calls/:room/end → every participant gone', endCall),
    row('bare RoomService.DeleteRoom → every participant gone', bareDelete),
    row('user hang-up → agent job exit (ours)', hangUpOurs),
    row('user hang-up → agent job exit (stock, as the starter ships it)', hangUpStock),
    row('user hang-up → agent job exit (stock + ctx.shutdown on hang-up)', hangUpStockShutdown),
    ...(pageToAudio.length
      ? [row('call page: click Call → agent audio playing (Chromium)', pageToAudio)]
      : []),
  ],
);
