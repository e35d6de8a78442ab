// The edge's deploy, rehearsed offline (`.ci/run` runs it; docs/operations.md has the real steps):
// 1. build the bundle `wrangler deploy` would upload (`--dry-run --outdir`);
// 2. serve that bundle in workerd (`wrangler dev <bundle> --no-bundle`) on an empty local D1: the
//    first request says the ledger is not migrated, naming the command;
// 3. apply every migration to that D1 from zero (`wrangler d1 migrations apply --local`);
// 4. serve the bundle again: health, a token (written to the ledger), the ledger's view, the
//    room's start applied through the call's object, the page.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, httpOk, startProcess, waitFor } from '../test/support/processes.ts';
import { signBody } from '../wire-contract/index.ts';

const ROOT = resolve(import.meta.dirname, '..');
const WRANGLER = join(ROOT, 'node_modules/.bin/wrangler');
const work = mkdtempSync(join(tmpdir(), 'lkvc-edge-rehearsal-'));
const bundle = join(work, 'bundle');
const persist = join(work, 'state');
const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1', CI: 'true' };
const ADMIN_KEY = 'rehearsal-admin-key-0123456789';
const APP_KEY = 'rehearsal-app-key-0123456789';
let passed = 0;

function say(line: string) {
  console.log(`edge-rehearsal: ${line}`);
}
function check(condition: unknown, what: string, detail = ''): asserts condition {
  if (!condition) throw new Error(`FAILED ${what}${detail ? `: ${detail}` : ''}`);
  passed += 1;
  say(`ok   ${what}`);
}
function wrangler(args: string[]): string {
  return execFileSync(WRANGLER, args, { cwd: ROOT, env, encoding: 'utf8', stdio: 'pipe' });
}

/** The built bundle in workerd, with the secrets `wrangler secret put` would set. */
async function serveBundle(name: string) {
  const port = await freePort();
  const emptyEnv = join(work, 'empty.env');
  writeFileSync(emptyEnv, '');
  const vars = {
    LIVEKIT_API_KEY: 'devkey',
    LIVEKIT_API_SECRET: 'secret',
    ADMIN_API_KEY: ADMIN_KEY,
    APP_API_KEY: APP_KEY,
  };
  const proc = startProcess(
    WRANGLER,
    [
      'dev',
      join(bundle, 'index.js'),
      '--no-bundle',
      '--config',
      join(ROOT, 'wrangler.toml'),
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--persist-to',
      persist,
      '--env-file',
      emptyEnv,
      '--show-interactive-dev-session=false',
      ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
    ],
    { cwd: ROOT, env, logFile: join(work, `${name}.log`) },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`the bundle in workerd (${name})`, () => httpOk(`${url}/healthz`), {
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  return { url, stop: () => proc.stop('SIGTERM') };
}
const token = (url: string) =>
  fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${APP_KEY}` },
    body: JSON.stringify({ participant_identity: 'rehearsal', participant_name: 'Rehearsal' }),
  });

// 1. The deploy bundle.
say('wrangler deploy --dry-run --outdir (builds the call page, bundles the Worker)');
const deployOut = wrangler(['deploy', '--dry-run', '--outdir', bundle]);
check(existsSync(join(bundle, 'index.js')), 'the deploy bundle is built');
const kib = (statSync(join(bundle, 'index.js')).size / 1024).toFixed(1);
check(!/nodejs_compat|node:/.test(deployOut), `it needs no nodejs_compat (index.js ${kib} KiB)`);
check(/CALLS[^\n]*Call/.test(deployOut), 'it binds the call object (CALLS: Call)');

// 2. The bundle on an empty D1.
let edge = await serveBundle('edge-unmigrated');
try {
  const res = await token(edge.url);
  const body = (await res.json()) as { error?: { code?: string; message?: string } };
  check(
    res.status === 503 && body.error?.code === 'ledger_not_migrated',
    `before migrating, POST /token answers ${res.status} ${body.error?.code}`,
  );
  check(
    body.error?.message?.includes('npx wrangler d1 migrations apply LEDGER --local'),
    'and names the command that applies the migrations',
  );
} finally {
  await edge.stop();
}

// 3. Every migration, from zero.
const migrations = readdirSync(join(ROOT, 'edge/migrations')).filter((f) => f.endsWith('.sql'));
say(`wrangler d1 migrations apply LEDGER --local (${migrations.length} migrations)`);
const applied = wrangler([
  'd1',
  'migrations',
  'apply',
  'LEDGER',
  '--local',
  '--persist-to',
  persist,
]);
const missing = migrations.filter((m) => !applied.includes(m));
check(
  missing.length === 0,
  `all ${migrations.length} migrations applied to an empty D1`,
  missing.join(', '),
);
const again = wrangler(['d1', 'migrations', 'apply', 'LEDGER', '--local', '--persist-to', persist]);
check(/No migrations to apply/i.test(again), 'applying again finds nothing to apply');

// 4. The bundle on the migrated D1.
edge = await serveBundle('edge');
try {
  const health = await fetch(`${edge.url}/healthz`);
  check(health.status === 200, `GET /healthz ${health.status}`);
  const res = await token(edge.url);
  const issued = (await res.json()) as { participant_token?: string; room_name?: string };
  check(
    res.status === 201 && !!issued.participant_token,
    `POST /token ${res.status} (room ${issued.room_name})`,
  );
  const view = await fetch(`${edge.url}/calls/${issued.room_name}`, {
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
  });
  const call = (await view.json()) as { status?: string };
  check(view.status === 200 && !!call.status, `GET /calls/:room ${view.status}: ${call.status}`);
  // The call's object in the bundle: it takes the room's start and end (a webhook is answered only
  // once the object took it; a 503 otherwise), and writes the ended call to the archive (D1), which
  // the list reads.
  const webhook = async (event: string, at: number) => {
    const body = JSON.stringify({
      event,
      room: { name: issued.room_name, sid: 'RM_rehearsal' },
      id: `EV_rehearsal_${event}`,
      createdAt: String(Math.floor(at / 1000)),
    });
    const res = await fetch(`${edge.url}/livekit/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/webhook+json',
        authorization: await signBody(body, 'devkey', 'secret', 300),
      },
      body,
    });
    return `${res.status} ${((await res.json()) as { outcome?: string }).outcome}`;
  };
  const started = await webhook('room_started', Date.now());
  check(started === '200 applied', `room_started webhook ${started}: the call's object took it`);
  const finished = await webhook('room_finished', Date.now());
  check(finished === '200 applied', `room_finished webhook ${finished}: the call's object took it`);
  const list = await fetch(`${edge.url}/calls?status=ended&limit=100`, {
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
  });
  const ended = ((await list.json()) as { calls?: { room: string }[] }).calls ?? [];
  check(
    list.status === 200 && ended.some((c) => c.room === issued.room_name),
    `GET /calls?status=ended ${list.status}: the object wrote the ended call to the archive`,
  );
  const page = await fetch(`${edge.url}/`);
  check(
    page.status === 200 && (await page.text()).includes('call-page.js'),
    `GET / ${page.status}: the call page`,
  );
} finally {
  await edge.stop();
}

rmSync(work, { recursive: true, force: true });
console.log(`edge rehearsal: passed, ${passed} checks`);
