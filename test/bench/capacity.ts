// npm run bench:capacity: how many concurrent spoken calls one agent worker (start mode, as
// deployed) holds before callers notice. N rtc-node callers at once, each speaking real speech
// (espeak-ng) and waiting for the spoken answer, for TURNS turns; the OpenAI stand-in answers with
// service-like delays. N ramps up (BENCH_LEVELS, default 1,2,4,8,12,16) and stops early once more
// than half the calls of a level fail.
// The same run measures a stock minimal agents-js agent with the same models.
import { dispose } from '@livekit/rtc-node';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';
import { defaultIdleProcesses } from '../../agent/process/capacity.ts';
import { startAgentWorker, type AgentWorker } from '../support/agent-worker.ts';
import { CallClient } from '../support/call-client.ts';
import { DEV_KEY, DEV_SECRET, startLiveKit } from '../support/livekit-server.ts';
import { startOpenAIStandIn } from '../support/openai-stand-in.ts';
import { loudMilliseconds, readWav, renderSpeech } from '../support/speech.ts';
import { processTree } from './process-tree.ts';
import { benchAgentEnv, failedCell, percentile, prepareLiveKitBench, printTable } from './table.ts';
import { sealedDispatchFor } from '../support/dispatch-metadata.ts';

const LEVELS = (process.env.BENCH_LEVELS ?? '1,2,4,8,12,16').split(',').map(Number);
const TURNS = Number(process.env.BENCH_TURNS ?? 3);
const ANSWER_TIMEOUT_MS = 20_000;
/** How long a caller waits for the agent to subscribe, then as long again for its greeting. */
const GREETING_TIMEOUT_MS = 30_000;
const ROOT = resolve(import.meta.dirname, '../..');

const bin = prepareLiveKitBench('bench:capacity');
const dir = mkdtempSync(join(tmpdir(), 'lkvc-bench-capacity-'));
const openai = await startOpenAIStandIn();
// What the real services take before their first byte (STT answer, LLM first token, TTS audio).
openai.sttDelayMs = Number(process.env.BENCH_STT_MS ?? 150);
openai.llmFirstTokenMs = Number(process.env.BENCH_LLM_MS ?? 300);
openai.ttsDelayMs = Number(process.env.BENCH_TTS_MS ?? 200);
const livekit = await startLiveKit(bin, dir);
// Two seconds of silence after the words: the agent's VAD hears the caller stop, as with a person.
const TAIL_MS = 2_000;
const speech = renderSpeech(join(dir, 'speech'), 'Tell me one thing about the weather.', {
  tailSeconds: TAIL_MS / 1000,
});
// Like a real STT, an upload holding only part of the words (the VAD heard a short pause inside
// the sentence) is heard as a fragment, which an end-of-turn model takes as unfinished; only one
// holding (nearly) all of the speech is the whole sentence. Answering the whole sentence for a
// fragment let an agent answer before the caller had finished, and the turn looked fast.
const SENTENCE_SPEECH_MS = loudMilliseconds(readWav(speech));
const hears = (speechMs: number) =>
  speechMs >= 0.8 * SENTENCE_SPEECH_MS ? 'Tell me one thing about the weather.' : 'Tell me one';
openai.hears = hears;
// Realtime mode (a BENCH_OURS configuration with AGENT_MODEL_MODE=realtime): the service detects
// the turn itself. Modelled: the end of the turn after BENCH_RT_SILENCE_MS of silence (OpenAI's
// server_vad default is 500 ms; semantic_vad, the plugin's default, varies with the words), and
// the model's first audio BENCH_RT_FIRST_AUDIO_MS after that.
openai.realtime.serverVad = {
  silenceMs: Number(process.env.BENCH_RT_SILENCE_MS ?? 500),
  responseDelayMs: Number(process.env.BENCH_RT_FIRST_AUDIO_MS ?? 500),
  hears,
};

const common = {
  ...benchAgentEnv(livekit.url, openai.url),
  E2E_HOOKS_DIR: join(dir, 'hooks'),
};
type Variant = { label: string; agentName: string; worker: AgentWorker; idleProcesses: string };
/**
 * Our agent's configurations to measure, `;`-separated, each `label` or `label:K=V,K=V` (agent
 * env on top of the defaults), e.g. BENCH_OURS='defaults;model:TURN_DETECTION=model'. The default
 * is one run with the fixed greeting on (AGENT_GREETING, replayed from the per-host cache).
 */
const GREETING = 'Hello! How can I help you today?';
const oursConfigs = (process.env.BENCH_OURS ?? `greeting:AGENT_GREETING=${GREETING}`)
  .split(';')
  .filter(Boolean)
  .map((spec) => {
    const [label, vars = ''] = spec.split(/:(.*)/s);
    const env = Object.fromEntries(
      vars
        .split(',')
        .filter(Boolean)
        .map((kv) => kv.split(/=(.*)/s) as [string, string]),
    );
    return { label: label!.trim(), env };
  });
const variants: Variant[] = [];
for (const [i, c] of oursConfigs.entries()) {
  const name = `ours${i || ''}`;
  const shown = Object.entries(c.env)
    .map(([k, v]) => `${k}=${k === 'AGENT_GREETING' ? '…' : v}`)
    .join(' ');
  variants.push({
    label: `ours (agent/job.ts)${shown ? `, ${shown}` : ''}`,
    agentName: name,
    idleProcesses:
      c.env.AGENT_IDLE_PROCESSES ??
      String(defaultIdleProcesses(Number(c.env.AGENT_MAX_CONCURRENT_CALLS ?? 64))),
    worker: await startAgentWorker(
      dir,
      {
        ...common,
        AGENT_NAME: name,
        AGENT_AUDIO_INPUT: 'true',
        AGENT_MAX_CONCURRENT_CALLS: '64',
        IDLE_PROMPT_SECONDS: '0',
        ...c.env,
      },
      name,
    ),
  });
}
if (process.env.BENCH_STOCK !== '0')
  variants.push({
    label: 'stock minimal agent (same models)',
    agentName: 'stock',
    // agents-js's own default in start mode: min(cores, 4).
    idleProcesses: '2',
    worker: await startAgentWorker(
      dir,
      {
        ...common,
        AGENT_NAME: 'stock',
        STOCK_VOICE: '1',
        STOCK_SHUTDOWN_ON_LEAVE: '1',
        // Stock reports the host's CPU use as its load: on a host busy with other work LiveKit
        // then dispatches no call to it at all ("no worker is available"). Counting 64 CPUs keeps
        // it taking calls; its pipeline is unchanged.
        ...(process.env.BENCH_STOCK_NUM_CPUS !== '' && {
          NUM_CPUS: process.env.BENCH_STOCK_NUM_CPUS ?? '64',
        }),
      },
      'stock',
      join(ROOT, 'test/bench/stock-agent.ts'),
    ),
  });

// BENCH_PYTHON=1: LiveKit's Python agents as a third row (test/bench/python), installed on first
// use into .tools/python-agents (a venv, from PyPI), never by `npm test`. BENCH_PYTHON_LOAD_SCALED=1
// scales its CPU load as the stock agent's is.
if (process.env.BENCH_PYTHON === '1') {
  const venv = join(ROOT, '.tools/python-agents');
  const python = join(venv, 'bin/python');
  if (!existsSync(python)) {
    execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
    execFileSync(
      python,
      ['-m', 'pip', 'install', '-q', '-r', join(ROOT, 'test/bench/python/requirements.txt')],
      { stdio: 'inherit' },
    );
  }
  const scaled = process.env.BENCH_PYTHON_LOAD_SCALED === '1';
  variants.push({
    label: `LiveKit Python agents 1.8.9, minimal${scaled ? ', load scaled' : ', its defaults'}`,
    agentName: 'python',
    // Its own default in production mode.
    idleProcesses: process.env.BENCH_PYTHON_IDLE ?? '2',
    worker: await startAgentWorker(
      dir,
      {
        ...common,
        AGENT_NAME: 'python',
        ...(scaled && { BENCH_PYTHON_LOAD_SCALED: '1' }),
      },
      'python',
      undefined,
      undefined,
      [python, join(ROOT, 'test/bench/python/minimal_agent.py'), 'start'],
    ),
  });
}

/**
 * Samples the tree while a level runs: CPU used by every process seen (job processes come and go,
 * so each one's last reading counts), and the RSS of each job process at its peak.
 */
function sampleTree(root: number) {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const peakRss = new Map<number, number>();
  const sample = () => {
    for (const [pid, { cpuSeconds, rssMiB }] of processTree(root)) {
      if (!first.has(pid)) first.set(pid, cpuSeconds);
      last.set(pid, cpuSeconds);
      if (pid !== root) peakRss.set(pid, Math.max(peakRss.get(pid) ?? 0, rssMiB));
    }
  };
  sample();
  const timer = setInterval(sample, 250);
  return {
    stop() {
      clearInterval(timer);
      sample();
      let cpu = 0;
      for (const [pid, end] of last) cpu += end - (first.get(pid) ?? end);
      return { cpuSeconds: cpu, peakRssMiB: [...peakRss.values()] };
    },
  };
}

type CallResult = { greetMs?: number; turnsMs: number[]; failed?: string };

async function oneCall(v: Variant, n: number, i: number): Promise<CallResult> {
  const room = `cap-${v.agentName}-${n}-${i}-${Date.now().toString(36)}`;
  const identity = `caller-${i}`;
  const at = new AccessToken(DEV_KEY, DEV_SECRET, { identity, ttl: 600 });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true });
  at.roomConfig = new RoomConfiguration({
    agents: [
      new RoomAgentDispatch({
        agentName: v.agentName,
        metadata: await sealedDispatchFor(room, identity),
      }),
    ],
  });
  const client = new CallClient();
  const result: CallResult = { turnsMs: [] };
  try {
    client.watchAgentAudio();
    const requested = Date.now();
    await client.connect(livekit.url, await at.toJwt(), room, identity);
    // A caller no agent reaches (LiveKit dispatched none, or the job never joined) is a failed
    // call: waiting for the subscription without a bound once hung the whole bench.
    const subscribed = await client
      .publishMicrophone(undefined, GREETING_TIMEOUT_MS)
      .then(() => true)
      .catch(() => false);
    if (!subscribed) return { ...result, failed: 'no agent (never subscribed to the caller)' };
    const greeting = await client
      .waitForEvent('agent-audio', () => true, GREETING_TIMEOUT_MS)
      .catch(() => undefined);
    if (!greeting) return { ...result, failed: 'no greeting' };
    result.greetMs = greeting.at - requested;
    // Let the greeting finish: speak once the agent has been quiet.
    if (!(await client.waitForEvent('transcription', () => true, ANSWER_TIMEOUT_MS).catch(() => 0)))
      return { ...result, failed: 'the greeting never finished' };
    for (let turn = 0; turn < TURNS; turn++) {
      const before = client.events.length;
      await client.speak(speech);
      const spokeAt = Date.now() - TAIL_MS; // the end of the words, not of the silence after them
      const answer = await waitAfter(client, before, 'agent-audio').catch(() => undefined);
      if (!answer) return { ...result, failed: `no answer to turn ${turn + 1}` };
      result.turnsMs.push(answer.at - spokeAt);
      // The answer's caption closes when its audio has played: the turn is over.
      await waitAfter(client, before, 'transcription').catch(() => undefined);
      if (client.disconnectReason !== undefined) return { ...result, failed: 'call ended early' };
    }
    return result;
  } finally {
    // A caller whose room LiveKit already dropped cannot leave it: that is no reason to stop.
    await client.leave().catch(() => {});
  }
}

async function waitAfter(client: CallClient, index: number, kind: string) {
  const deadline = Date.now() + ANSWER_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const found = client.events.slice(index).find((e) => e.kind === kind);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no ${kind}`);
}

/**
 * Waits (bounded) until the worker's pool of idle job processes is warm: agents-js starts them one
 * at a time after registering, and a burst measured before that measures the warm-up instead.
 * Warm: the worker, its inference process and `idle` job processes exist, and none of them is
 * starting up (under a tenth of a core each, on average).
 */
async function warmedUp(v: Variant, idle: number) {
  const deadline = Date.now() + 120_000;
  const cpu = () => [...processTree(v.worker.proc.child.pid!).values()];
  let before = cpu();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = cpu();
    const used =
      now.reduce((n, p) => n + p.cpuSeconds, 0) - before.reduce((n, p) => n + p.cpuSeconds, 0);
    // An idle job process still uses a few % of a core (agents-js's loop monitor, pings).
    if (now.length >= idle + 2 && used < 0.1 * now.length) return;
    before = now;
  }
  console.warn(`${v.label}: its idle job processes were not warm within 120 s`);
}

const rows: (string | number)[][] = [];
const verdicts: string[] = [];
// A bench that dies half-way must not leave its workers' job processes running on the machine.
process.once('exit', () => {
  for (const v of variants)
    try {
      process.kill(-v.worker.proc.child.pid!, 'SIGKILL');
    } catch {
      /* already stopped */
    }
});
for (const v of variants) {
  let baselineP95: number | undefined;
  let largestOk = 0;
  for (const n of LEVELS) {
    // Each level from a warm pool: the previous level's calls used warm processes, and agents-js
    // refills them one at a time after; a burst measured before that measures the refill.
    await warmedUp(v, Number(v.idleProcesses));
    const sampler = sampleTree(v.worker.proc.child.pid!);
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: n }, (_, i) => oneCall(v, n, i)));
    const wallS = (Date.now() - started) / 1000;
    const { cpuSeconds: cpuS, peakRssMiB: peakRss } = sampler.stop();
    const turns = results.flatMap((r) => r.turnsMs);
    const greets = results.flatMap((r) => (r.greetMs === undefined ? [] : [r.greetMs]));
    const failed = results.filter((r) => r.failed);
    const p95 = percentile(turns, 95);
    baselineP95 ??= p95;
    const ok = failed.length === 0 && p95 <= 1.5 * baselineP95;
    if (ok) largestOk = n;
    rows.push([
      v.label,
      n,
      Math.round(percentile(turns, 50)),
      Math.round(p95),
      Math.round(percentile(greets, 50)),
      greets.length ? Math.round(Math.max(...greets)) : '—',
      // Failed calls past the first level are what the ramp looks for; at the first they leave
      // the baseline every other level is judged by unmeasured, and the run exits non-zero.
      failedCell(
        failed.length,
        failed.map((f) => f.failed!),
        { finding: n !== LEVELS[0] },
      ),
      peakRss.length ? Math.round(percentile(peakRss, 50)) : '—',
      `${Math.round((cpuS / wallS) * 100)} %`,
    ]);
    if (failed.length > n / 2) break;
  }
  verdicts.push(
    `${v.label}: largest N with p95 turn latency ≤ 1.5 × its N = 1 value and no failures: ${largestOk}`,
  );
}

printTable(
  `Concurrent spoken calls on one agent worker (bench:capacity, ${TURNS} turns, STT ${openai.sttDelayMs} ms, LLM first token ${openai.llmFirstTokenMs} ms, TTS ${openai.ttsDelayMs} ms; realtime: turn end after ${openai.realtime.serverVad.silenceMs} ms of silence, first audio ${openai.realtime.serverVad.responseDelayMs} ms later)`,
  [
    'agent',
    'calls',
    'turn p50 ms',
    'turn p95 ms',
    'token → greeting audio p50 ms',
    'slowest greeting ms',
    'failed calls',
    'peak RSS per process under the worker, MiB (median)',
    'CPU (worker and all its processes, % of one core)',
  ],
  rows,
);
console.log(`\n${verdicts.join('\n')}`);
console.log(
  `(2 cores; /proc/cpuinfo: ${readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1]})`,
);

for (const v of variants) await v.worker.stop('SIGTERM');
await livekit.stop();
await openai.close();
await dispose();
