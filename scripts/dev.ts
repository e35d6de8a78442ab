// `npm run dev` (through scripts/dev.mjs, which checks the Node version first): the whole system on
// this machine. A LiveKit server (local, built from its pinned Go module, unless LIVEKIT_URL points
// elsewhere), the edge under `wrangler dev` with local D1 on :8787, and the agent in `dev` mode, on
// OpenAI with OPENAI_API_KEY, else on the local OpenAI stand-in (canned replies), said loudly in the
// terminal and on the call page. Ctrl-C stops everything.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startEdge } from '../test/support/edge-dev.ts';
import {
  DEV_KEY,
  DEV_SECRET,
  resolveLiveKitServer,
  startLiveKit,
  type LiveKit,
} from '../test/support/livekit-server.ts';
import { startOpenAIStandIn } from '../test/support/openai-stand-in.ts';
import { startProcess, type Proc } from '../test/support/processes.ts';

const ROOT = resolve(import.meta.dirname, '..');
const dir = join(ROOT, '.wrangler', 'dev-system');
mkdirSync(dir, { recursive: true });
const EDGE_PORT = Number(process.env.EDGE_PORT ?? 8787);
const stops: (() => Promise<unknown>)[] = [];

let livekitUrl = process.env.LIVEKIT_URL;
let key = process.env.LIVEKIT_API_KEY ?? DEV_KEY;
let secret = process.env.LIVEKIT_API_SECRET ?? DEV_SECRET;
let livekit: LiveKit | undefined;
if (!livekitUrl) {
  const bin = resolveLiveKitServer();
  if (!bin) {
    console.error(
      'No LiveKit server: install Go >= 1.26 (npm run dev builds it once), put livekit-server on PATH, or set LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET for LiveKit Cloud.',
    );
    process.exit(1);
  }
  // LiveKit's usual ports, so the URL in wrangler.toml and client examples work as they are.
  livekit = await startLiveKit(bin, dir, {
    webhookUrl: `http://127.0.0.1:${EDGE_PORT}/livekit/webhook`,
    ports: [7880, 7881, 7882],
  });
  stops.push(() => livekit!.stop());
  livekitUrl = livekit.url;
  key = DEV_KEY;
  secret = DEV_SECRET;
}

// Without OPENAI_API_KEY (or with DEV_OPENAI_STAND_IN=1) the agent runs on the local stand-in the
// tests use, so the first Call always reaches an assistant.
let openaiKey = process.env.OPENAI_API_KEY;
let openaiBase = process.env.OPENAI_BASE_URL;
const standInModels = !openaiKey || process.env.DEV_OPENAI_STAND_IN === '1';
const STAND_IN_NOTICE = 'Stand-in models: canned replies; set OPENAI_API_KEY for real ones.';
if (standInModels) {
  const standIn = await startOpenAIStandIn();
  stops.push(() => standIn.close());
  openaiKey = 'sk-local-stand-in';
  openaiBase = standIn.url;
}

const edge = await startEdge(
  join(dir, 'edge'),
  {
    LIVEKIT_URL: livekitUrl,
    LIVEKIT_API_KEY: key,
    LIVEKIT_API_SECRET: secret,
    AUTH_ALLOW_ANONYMOUS: 'true',
    // Anonymous callers against a LiveKit that is not on this machine (LiveKit Cloud from dev)
    // must be asked for by name: this is that ask, for this local dev edge only.
    AUTH_ALLOW_ANONYMOUS_IN_PRODUCTION: 'i-know-anyone-can-call',
    ADMIN_API_KEY: process.env.ADMIN_API_KEY ?? 'dev-admin-key-0123456789',
    APP_API_KEY: process.env.APP_API_KEY ?? 'dev-app-key-0123456789',
    CORS_ALLOWED_ORIGINS:
      process.env.CORS_ALLOWED_ORIGINS ?? 'http://localhost:5173,http://127.0.0.1:5173',
    ...(standInModels && { DEV_CALL_PAGE_NOTICE: STAND_IN_NOTICE }),
  },
  EDGE_PORT,
);
stops.push(() => edge.stop());

const agent: Proc = startProcess(process.execPath, [join(ROOT, 'agent/main.ts'), 'dev'], {
  cwd: ROOT,
  env: {
    ...process.env,
    LIVEKIT_URL: livekitUrl,
    LIVEKIT_API_KEY: key,
    LIVEKIT_API_SECRET: secret,
    OPENAI_API_KEY: openaiKey,
    ...(openaiBase && { OPENAI_BASE_URL: openaiBase }),
    EDGE_URL: edge.url,
    AGENT_HEALTH_PORT: '0',
  },
  logFile: join(dir, 'agent.log'),
});
stops.push(() => agent.stop('SIGINT'));

const bannerLines = [
  STAND_IN_NOTICE,
  'The assistant answers canned lines: type in the text box; "goodbye" ends the call.',
];
const banner = standInModels
  ? ['', '!'.repeat(90), ...bannerLines.map((l) => `!!  ${l.padEnd(83)} !!`), '!'.repeat(90)].join(
      '\n',
    )
  : '';
console.log(`Call page ${edge.url}/   ← open this, press Call${banner}

LiveKit   ${livekitUrl}  (key ${key}${livekit ? `, secret ${secret}; log ${join(dir, 'livekit.log')}` : ''})
Edge      ${edge.url}  (log ${edge.proc.logFile}; admin key ${edge.adminKey})
Agent     dev mode, ${standInModels ? `STAND-IN MODELS at ${openaiBase}` : `OpenAI${openaiBase ? ` at ${openaiBase}` : ''}`}; log ${agent.logFile}

Get a token (anonymous callers are on in dev):
  curl -s -X POST ${edge.url}/token -H 'content-type: application/json' -d '{"participant_name":"Me"}'
End a call for everyone:
  curl -s -X POST ${edge.url}/calls/<room>/end -H 'authorization: Bearer ${edge.adminKey}' -H 'content-type: application/json' -d '{"mode":"end_for_all"}'

Ctrl-C stops everything.`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    await Promise.allSettled(stops.reverse().map((s) => s()));
    process.exit(0);
  });
}
