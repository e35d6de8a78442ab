// `npm run test:image`: builds agent/Dockerfile with podman (on a locally made base when no registry
// is reachable: scripts/base-image.sh), checks what is in the image, then runs it as Fly would (its
// fly.toml [env] and volume, node as PID 1, host networking on loopback) against the real LiveKit
// server, the edge under wrangler dev and the OpenAI stand-in: registered, a call greeted and ended
// by the agent, SIGTERM mid-call ending the call as `drain` and the container exiting 143; then a
// report kept on the volume while the edge is unreachable, delivered once by a new container on
// the same volume after the old one is removed (as a Fly deploy replaces a Machine's image).
//
// Not part of `npm test` (a build takes a minute or more); `.ci/run` runs it as its own step. Outside
// CI a missing tool skips it with a message; under CI=true it fails.
import { execFileSync, spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'smol-toml';
import type { CallClient } from '../test/support/call-client.ts';
import { startEdge, type Edge } from '../test/support/edge-dev.ts';
import {
  DEV_KEY,
  DEV_SECRET,
  resolveLiveKitServer,
  startLiveKit,
  type LiveKit,
} from '../test/support/livekit-server.ts';
import { startOpenAIStandIn, type StandIn } from '../test/support/openai-stand-in.ts';
import { freePort, waitFor } from '../test/support/processes.ts';
import { metricValue } from '../test/support/prometheus-text.ts';
import { startTcpProxy, type TcpProxy } from '../test/support/tcp-proxy.ts';

// rtc-node logs every event at debug level unless NODE_ENV=production: quiet, for this check's callers
// only (the edge and LiveKit started below get the environment as it was).
const nodeEnv = process.env.NODE_ENV;
process.env.NODE_ENV = 'production';
const { dispose, DisconnectReason } = await import('@livekit/rtc-node');
const { CallClient: Caller } = await import('../test/support/call-client.ts');
if (nodeEnv === undefined) delete process.env.NODE_ENV;
else process.env.NODE_ENV = nodeEnv;

const ROOT = resolve(import.meta.dirname, '..');
const CI = process.env.CI === 'true' || process.env.CI === '1';
const IMAGE = process.env.IMAGE_CHECK_TAG ?? 'localhost/livekit-voice-agent:image-check';
const PODMAN = process.env.PODMAN ?? 'podman';
// This VM's crun refuses to start containers ("cgroups in hybrid mode"); runc works.
const RUNTIME = process.env.PODMAN_RUNTIME ?? 'runc';
const started = Date.now();
let passed = 0;

function say(line: string) {
  console.log(`image-check: ${line}`);
}
function ok(what: string) {
  passed += 1;
  say(`ok   ${what}`);
}
function check(condition: unknown, what: string, detail = ''): asserts condition {
  if (!condition) throw new Error(`FAILED ${what}${detail ? `: ${detail}` : ''}`);
  ok(what);
}
/** A missing prerequisite: a skip outside CI, a failure under CI (a skip there hides a hole). */
function missing(what: string): never {
  if (CI) {
    console.error(`image-check: FAILED ${what} (CI=true: nothing may be skipped)`);
    process.exit(1);
  }
  say(`SKIPPED: ${what}`);
  process.exit(0);
}
function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

const podmanArgs = (args: string[]) => ['--runtime', RUNTIME, ...args];
function podman(args: string[], opts: SpawnSyncOptions = {}): string {
  const res = spawnSync(PODMAN, podmanArgs(args), {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    ...opts,
  });
  if (res.status !== 0)
    throw new Error(
      `podman ${args.slice(0, 2).join(' ')} exited ${res.status}: ${String(res.stderr ?? '').slice(-2000)}`,
    );
  return String(res.stdout ?? '');
}

// podman's default rlimits exceed what this VM lets runc set ("error setting rlimit"): nofile at
// our own hard limit, nproc at ours capped by the kernel's pid_max (more is meaningless anyway).
const [hardNofile, hardNproc] = execFileSync('bash', ['-c', 'ulimit -Hn; ulimit -Hu'], {
  encoding: 'utf8',
})
  .trim()
  .split('\n')
  .map((v) => (v === 'unlimited' ? Infinity : Number(v)));
const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
const nofile = Math.min(hardNofile ?? 1_048_576, 1_048_576);
const nproc = Math.min(hardNproc ?? pidMax, pidMax);
const ulimits = ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`];

// ---- prerequisites -------------------------------------------------------------------------
for (const tool of [PODMAN, RUNTIME, 'mmdebstrap', 'newuidmap'])
  if (!onPath(tool))
    missing(`${tool} is not installed (apt-get install podman runc mmdebstrap uidmap)`);
const livekitBin = resolveLiveKitServer();
if (!livekitBin) missing('no LiveKit server (see docs/testing.md, "The LiveKit server")');

// ---- the base image and the build ------------------------------------------------------------
say('base image (scripts/base-image.sh)');
execFileSync('bash', [join(ROOT, 'scripts/base-image.sh')], { cwd: ROOT, stdio: 'inherit' });

const work = mkdtempSync(join(tmpdir(), 'lkvc-image-'));
const marker = `image-check-secret-${randomUUID()}`;
/** npm settings for the build only: the machine's registry, auth and CA (a TLS proxy has its own). */
function npmSecrets(): string[] {
  const npmConfig = (key: string) => {
    try {
      const v = execFileSync('npm', ['config', 'get', key], { cwd: ROOT, encoding: 'utf8' }).trim();
      return v && v !== 'null' && v !== 'undefined' ? v : undefined;
    } catch {
      return undefined;
    }
  };
  const userrc = join(homedir(), '.npmrc');
  // Registry, scoped registries and auth lines from ~/.npmrc; host paths (cafile, prefix…) stay out.
  const kept = existsSync(userrc)
    ? readFileSync(userrc, 'utf8')
        .split('\n')
        .filter((l) =>
          /^\s*(@[^:]+:registry|\/\/[^=]+|registry|strict-ssl|always-auth)\s*=/.test(l),
        )
    : [];
  const npmrc = join(work, 'npmrc');
  writeFileSync(
    npmrc,
    [`# ${marker}`, `registry=${npmConfig('registry') ?? 'https://registry.npmjs.org/'}`, ...kept]
      .join('\n')
      .concat('\n'),
    { mode: 0o600 },
  );
  const args = ['--secret', `id=npmrc,src=${npmrc}`];
  const ca = npmConfig('cafile') ?? process.env.NODE_EXTRA_CA_CERTS;
  if (ca && existsSync(ca)) args.push('--secret', `id=npm_ca,src=${ca}`);
  return args;
}

say(`building ${IMAGE} from agent/Dockerfile (log ${join(work, 'build.log')})`);
const buildStart = Date.now();
const build = spawnSync(
  PODMAN,
  podmanArgs([
    'build',
    '--pull=never',
    '--network=host',
    ...ulimits,
    '-f',
    'agent/Dockerfile',
    '--ignorefile',
    'agent/Dockerfile.dockerignore',
    ...npmSecrets(),
    '-t',
    IMAGE,
    '.',
  ]),
  { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
);
writeFileSync(join(work, 'build.log'), `${build.stdout}\n${build.stderr}`);
const buildSeconds = Math.round((Date.now() - buildStart) / 1000);
if (build.status !== 0) {
  console.error(`${build.stdout}\n${build.stderr}`.split('\n').slice(-40).join('\n'));
  throw new Error(`podman build failed (exit ${build.status})`);
}
say(`built in ${buildSeconds} s`);

// ---- what is in the image --------------------------------------------------------------------
type ImageInfo = {
  Size: number;
  Config: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[];
    WorkingDir?: string;
    ExposedPorts?: Record<string, unknown>;
  };
};
const [info] = JSON.parse(podman(['image', 'inspect', IMAGE])) as ImageInfo[];
const config = info!.Config;
check(
  JSON.stringify(config.Cmd) === '["node","dist/agent/main.js","start"]' &&
    JSON.stringify(config.Entrypoint) === '["/usr/local/bin/agent-entrypoint"]',
  'CMD is `node dist/agent/main.js start` in exec form, behind the entrypoint that drops root',
);
check(config.ExposedPorts?.['8081/tcp'] !== undefined, 'exposes the health port 8081');
const envNames = (config.Env ?? []).map((e) => e.split('=')[0]!);
check(
  envNames.every((n) => !/KEY|SECRET|TOKEN|PASS|AUTH|NPM_CONFIG|CA_CERT/i.test(n)),
  `no secret-like variable in the image config (${envNames.join(', ')})`,
);
const history = podman(['history', '--no-trunc', '--format', '{{.CreatedBy}}', IMAGE]);
check(
  !history.includes(marker) &&
    !/_authToken|_password|BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)/.test(history),
  'the history holds no npm credentials or certificates',
);

// The flattened filesystem, once: its listing (with owners), and a byte search for the secret.
const container = podman(['create', IMAGE]).trim();
const tarball = join(work, 'image.tar');
try {
  podman(['export', '-o', tarball, container]);
} finally {
  podman(['rm', container]);
}
const listing = execFileSync('tar', ['-tvf', tarball, '--numeric-owner'], {
  encoding: 'utf8',
  maxBuffer: 256 * 1024 * 1024,
})
  .split('\n')
  .filter(Boolean)
  .map((line) => {
    const [mode, owner, , , , ...rest] = line.split(/\s+/);
    return { mode: mode!, owner: owner!, path: rest.join(' ').replace(/ -> .*$/, '') };
  });
const paths = new Set(listing.map((e) => e.path.replace(/\/$/, '')));
const secretInFiles = spawnSync('grep', ['-a', '-c', '-F', marker, tarball], { encoding: 'utf8' });
check(
  secretInFiles.stdout.trim() === '0',
  "the build's npm settings (a secret mount) are in no layer",
);
rmSync(tarball);
const stray = [...paths].filter(
  (p) =>
    (/(^|\/)\.?npmrc$/.test(p) && !p.startsWith('usr/local/lib/node_modules/npm/')) ||
    /(^|\/)(\.dev\.vars[^/]*|\.env[^/]*|\.git|\.wrangler)$/.test(p) ||
    /^run\/secrets\/./.test(p) ||
    /^root\/\.npm\//.test(p) ||
    /^app\/(test|edge|agent|wire-contract|scripts)(\/|$)/.test(p) ||
    (/\.(pem|key)$/.test(p) && !/^(etc\/ssl|usr\/share\/ca-certificates|usr\/lib\/ssl)\//.test(p)),
);
check(
  stray.length === 0,
  'no .npmrc, .dev.vars, .env, .git, npm cache, sources or keys',
  stray.join(', '),
);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
};
// The lockfile marks every package only development needs (`"dev": true`): none may be in /app.
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean }>;
};
const devOnly = Object.entries(lock.packages).filter(
  ([path, p]) => path.startsWith('node_modules/') && p.dev,
);
const devInImage = devOnly.map(([path]) => path).filter((path) => paths.has(`app/${path}`));
check(
  devInImage.length === 0,
  `none of the lockfile's ${devOnly.length} development-only packages is in the image`,
  devInImage.join(', '),
);
const prodMissing = Object.keys(pkg.dependencies).filter(
  (name) => !paths.has(`app/node_modules/${name}`),
);
check(prodMissing.length === 0, 'every dependency is in node_modules', prodMissing.join(', '));
const appNotRoot = listing.filter((e) =>
  e.path.startsWith('app/') || e.path === 'app/' ? !e.owner.startsWith('0/0') : false,
);
check(
  appNotRoot.length === 0,
  'the application (/app) is owned by root',
  appNotRoot
    .slice(0, 5)
    .map((e) => `${e.path} ${e.owner}`)
    .join(', '),
);

const perms = podman([
  'run',
  '--rm',
  '--network=none',
  ...ulimits,
  IMAGE,
  'sh',
  '-c',
  'id -u; echo "$HOME"; test -w "$HOME" && echo home-writable; find /app -writable | head -5; du -sm /app/node_modules | cut -f1',
])
  .trim()
  .split('\n');
check(perms[0] === '10001', `a command in the container runs as uid ${perms[0]} (the app user)`);
check(perms[2] === 'home-writable', `HOME (${perms[1]}) is writable by the app user`);
const writable = perms.slice(3, -1);
check(writable.length === 0, 'nothing under /app is writable by the app user', writable.join(', '));
const nodeModulesMb = Number(perms.at(-1));

// ---- the image running against the real system ------------------------------------------------
const fly = parse(readFileSync(join(ROOT, 'fly.toml'), 'utf8')) as {
  env: Record<string, string>;
  mounts: { source: string; destination: string };
};
// The Machine's volume (fly.toml [mounts]), as a podman volume: it outlives the containers.
const volume = `lkvc-image-check-${process.pid}`;
podman(['volume', 'create', volume]);
const mount = ['-v', `${volume}:${fly.mounts.destination}`];
let standIn: StandIn | undefined;
let livekit: LiveKit | undefined;
let edge: Edge | undefined;
let name: string | undefined;
const names: string[] = [];
let edgeProxy: TcpProxy | undefined;
const clients: CallClient[] = [];
try {
  standIn = await startOpenAIStandIn();
  const edgePort = await freePort();
  livekit = await startLiveKit(livekitBin, work, {
    webhookUrl: `http://127.0.0.1:${edgePort}/livekit/webhook`,
  });
  edge = await startEdge(
    join(work, 'edge'),
    {
      LIVEKIT_URL: livekit.url,
      LIVEKIT_API_KEY: DEV_KEY,
      LIVEKIT_API_SECRET: DEV_SECRET,
      AUTH_ALLOW_ANONYMOUS: 'true',
      AGENT_NAME: fly.env.AGENT_NAME ?? 'voice-agent',
    },
    edgePort,
  );
  const healthPort = await freePort();
  const metricsPort = await freePort();
  // fly.toml's [env] as Fly sets it, the secrets `fly secrets set` would, and two overrides: the
  // health port (host networking; 8081 may be taken here) and a short drain window for the test.
  const env: Record<string, string> = {
    ...fly.env,
    LIVEKIT_URL: livekit.url,
    LIVEKIT_API_KEY: DEV_KEY,
    LIVEKIT_API_SECRET: DEV_SECRET,
    OPENAI_API_KEY: 'sk-local-stand-in',
    OPENAI_BASE_URL: standIn.url,
    EDGE_URL: edge.url,
    AGENT_HEALTH_PORT: String(healthPort),
    AGENT_METRICS_PORT: String(metricsPort),
    DRAIN_TIMEOUT_SECONDS: '6',
    AGENT_AUDIO_INPUT: 'false',
  };
  /** A container of the image on the volume, as Fly starts a Machine; its log in `work`. */
  const startContainer = async (label: string, overrides: Record<string, string> = {}) => {
    const cname = `lkvc-image-check-${process.pid}-${label}`;
    names.push(cname);
    const all = { ...env, ...overrides };
    const envArgs = Object.keys(all).flatMap((k) => ['-e', k]); // values from our env, not argv
    podman(
      ['run', '-d', '--name', cname, '--network=host', ...ulimits, ...mount, ...envArgs, IMAGE],
      { env: { ...process.env, ...all } },
    );
    const logs = spawn(PODMAN, podmanArgs(['logs', '-f', cname]), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const logPath = join(work, `agent-${label}.log`);
    const logFile = createWriteStream(logPath);
    // Two sources into one file: neither may end it for the other.
    logs.stdout.pipe(logFile, { end: false });
    logs.stderr.pipe(logFile, { end: false });
    say(`container ${cname} started (log ${logPath})`);
    const health = await waitFor(
      `the container ${label} registered with LiveKit (health 200)`,
      async () => {
        const res = await fetch(`http://127.0.0.1:${all.AGENT_HEALTH_PORT}/`, {
          signal: AbortSignal.timeout(1000),
        }).catch(() => undefined);
        return res?.status === 200 ? res.status : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    return { name: cname, health, logs, log: () => readFileSync(logPath, 'utf8') };
  };
  const main = await startContainer('main');
  name = main.name;
  const logs = main.logs;
  check(main.health === 200, 'health check 200: the worker registered with LiveKit');
  const worker = (await (await fetch(`http://127.0.0.1:${healthPort}/worker`)).json()) as {
    agent_name?: string;
  };
  check(worker.agent_name === env.AGENT_NAME, `registered as ${worker.agent_name}`);

  const pid1 = podman([
    'exec',
    name,
    'sh',
    '-c',
    "tr '\\0' ' ' </proc/1/cmdline; echo; awk '/^Uid:/ {print $2}' /proc/1/status",
  ])
    .trim()
    .split('\n');
  check(pid1[0]!.trim() === 'node dist/agent/main.js start', `PID 1 is node (${pid1[0]!.trim()})`);
  check(pid1[1] !== '0', `PID 1 runs as uid ${pid1[1]}`);

  const call = async (): Promise<CallClient> => {
    const c = new Caller();
    clients.push(c);
    await c.join(edge!.url, '');
    await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
    return c;
  };
  const ledger = async (room: string) =>
    (await (
      await fetch(`${edge!.url}/calls/${room}`, {
        headers: { authorization: `Bearer ${edge!.adminKey}` },
      })
    ).json()) as { status: string; end_reason?: string; report?: unknown };
  const reported = (room: string) =>
    waitFor(`the report for ${room}`, async () => {
      const view = await ledger(room);
      return view.report ? view : undefined;
    });

  /** What Fly scrapes (fly.toml [metrics]). */
  const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const first = await call();
  ok('a call is greeted by the containerized agent');
  // Its job process marked the greeting: /metrics counts the call as running, no longer starting.
  const live = await waitFor('the greeted call running (/metrics)', async () => {
    const text = await scrape();
    return metricValue(text, 'voice_agent_calls_running') === 1 ? text : undefined;
  }).catch(() => '');
  check(
    metricValue(live, 'voice_agent_calls') === 1 &&
      metricValue(live, 'voice_agent_calls_starting') === 0,
    '/metrics during the call: 1 call, greeted (running 1, starting 0)',
  );
  first.say('Thanks, that is all. Goodbye!');
  check(
    (await first.waitForDisconnect(30_000)) === DisconnectReason.ROOM_DELETED,
    'goodbye → the agent ends the call for everyone (ROOM_DELETED)',
  );
  const firstView = await reported(first.roomName);
  check(
    firstView.end_reason === 'agent_end_call',
    `the ledger holds the agent's signed report: ${firstView.end_reason}`,
  );

  // What Fly scrapes (fly.toml [metrics]): the call's end and its report, counted by the worker.
  const scraped = await waitFor('the worker counted the call (/metrics)', async () => {
    const text = await scrape();
    const ended = metricValue(text, 'voice_agent_calls_ended_total{reason="agent_end_call"}');
    return ended === 1 ? text : undefined;
  });
  check(
    metricValue(scraped, 'voice_agent_reports_total{fate="delivered"}') === 1 &&
      metricValue(scraped, 'voice_agent_greeting_latency_seconds_count') === 1 &&
      metricValue(scraped, 'voice_agent_job_process_ready_seconds_count') === 1 &&
      Number.isInteger(metricValue(scraped, 'voice_agent_call_cap')),
    '/metrics on its own port counts the call: ended by agent_end_call, its report delivered, its greeting and its process’s start timed',
  );

  const target = metricValue(scraped, 'voice_agent_idle_processes_target') ?? NaN;
  const warm = await waitFor('the pool warm again (/metrics)', async () => {
    const n = metricValue(await scrape(), 'voice_agent_warm_processes');
    return n === target ? n : undefined;
  });
  check(
    target > 0 && warm === target,
    `/metrics counts the warm job processes: ${warm} of ${target}`,
  );

  const second = await call();
  say('SIGTERM to the container during a call');
  const signalledAt = Date.now();
  podman(['kill', '--signal', 'TERM', name]);
  await second.waitForDisconnect(60_000);
  const notice = second.events.find((e) => e.kind === 'end-notice')?.detail as
    { reason?: string } | undefined;
  check(
    notice?.reason === 'drain',
    `the call ends as drain ${Math.round((Date.now() - signalledAt) / 1000)} s after SIGTERM`,
  );
  const secondView = await reported(second.roomName);
  check(secondView.end_reason === 'drain', `the ledger says ${secondView.end_reason}`);
  const exit = podman(['wait', name]).trim();
  check(exit === '143', `the container exits ${exit} (143 = drained after SIGTERM)`);
  logs.kill();
  podman(['rm', name]);

  // ---- the outbox on the volume: a report kept while the edge is unreachable survives the
  // container (a deploy or a restart replaces the Machine's root filesystem) -------------------
  const outboxFiles = () =>
    podman([
      'run',
      '--rm',
      '--network=none',
      ...ulimits,
      ...mount,
      '--entrypoint',
      'sh',
      IMAGE,
      '-c',
      // Every report file, wherever the outbox holds it (a pass cut short by the exit leaves its
      // claim in sending/: the next start returns it).
      `find ${env.REPORT_OUTBOX_DIR} -type f \\( -name '*.json' -o -path '*/sending/*' \\) | wc -l`,
    ]).trim();
  check(outboxFiles() === '0', 'the outbox on the volume is empty after the drained call');
  edgeProxy = await startTcpProxy(() => edgePort);
  const old = await startContainer('old', {
    EDGE_URL: `http://${edgeProxy.host}`,
    CLEANUP_BUDGET_MS: '3000',
    REPORT_OUTBOX_RETRY_SECONDS: '1',
  });
  const kept = await call();
  say('the edge becomes unreachable for the agent; the caller says goodbye');
  edgeProxy.refusing = true;
  edgeProxy.cut();
  kept.say('Thanks, that is all. Goodbye!');
  check(
    (await kept.waitForDisconnect(30_000)) === DisconnectReason.ROOM_DELETED,
    'the agent ends the call while the edge is unreachable',
  );
  await waitFor('the report kept in the outbox', async () =>
    /report kept in the outbox/.test(old.log()) ? true : undefined,
  );
  check(
    !(await ledger(kept.roomName)).report,
    'the ledger has no report for it: the edge never heard',
  );
  podman(['stop', '-t', '60', old.name]);
  podman(['rm', old.name]);
  old.logs.kill();
  const waiting = outboxFiles();
  check(waiting === '1', 'the old container is gone; its report waits on the volume', waiting);
  const next = await startContainer('next', { EDGE_URL: edge.url });
  const delivered = await reported(kept.roomName);
  check(
    delivered.end_reason === 'agent_end_call',
    `a new container on the same volume delivers it: the ledger says ${delivered.end_reason}`,
  );
  // The ledger can have the report before the worker's log line about it is written.
  const deliveryLines = () =>
    next
      .log()
      .split('\n')
      .filter((l) => l.includes('report delivered from the outbox'));
  await waitFor('the delivery in the new container’s log', async () =>
    deliveryLines().length ? true : undefined,
  );
  const deliveries = deliveryLines();
  check(
    deliveries.length === 1 && deliveries[0]!.includes('"status":201'),
    'delivered once, and first (201 accepted, not a 200 duplicate)',
    deliveries.join('\n'),
  );
  check(outboxFiles() === '0', 'the outbox on the volume is empty again');
  podman(['kill', '--signal', 'TERM', next.name]);
  podman(['wait', next.name]);
  next.logs.kill();
} finally {
  await Promise.allSettled(clients.map((c) => c.leave()));
  for (const n of names)
    spawnSync(PODMAN, podmanArgs(['rm', '-f', '-t', '0', n]), { stdio: 'ignore' });
  spawnSync(PODMAN, podmanArgs(['volume', 'rm', '-f', volume]), { stdio: 'ignore' });
  await Promise.allSettled([edge?.stop(), livekit?.stop(), standIn?.close(), edgeProxy?.close()]);
  await dispose();
}

const sizeMb = Math.round(info!.Size / 1e6);
say(`image ${IMAGE}: ${sizeMb} MB (node_modules ${nodeModulesMb} MB), build ${buildSeconds} s`);
rmSync(work, { recursive: true, force: true });
console.log(
  `image check: passed, ${passed} checks, image ${sizeMb} MB, build ${buildSeconds} s, ${Math.round((Date.now() - started) / 1000)} s in all`,
);
process.exit(0);
