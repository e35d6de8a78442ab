import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, httpOk, startProcess, waitFor, type Proc } from './processes.ts';
import { toolCache } from './tool-cache.ts';

export const LIVEKIT_SERVER_VERSION = 'v1.13.5';
export const DEV_KEY = 'devkey';
export const DEV_SECRET = 'secret';

/** The binary cache lives outside the clone, keyed by version, so CI builds it once per machine. */
export function livekitCacheDir(): string {
  return toolCache(`livekit-server-${LIVEKIT_SERVER_VERSION}`);
}

function onPath(cmd: string): string | undefined {
  try {
    return (
      execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined
    );
  } catch {
    return undefined;
  }
}

/**
 * Finds the LiveKit server: LIVEKIT_SERVER_BIN, the cache, or `livekit-server` on PATH; else builds
 * it with `go install` at the pinned tag when Go is installed. Undefined when none of these works.
 */
export function resolveLiveKitServer({ build = true } = {}): string | undefined {
  if (process.env.LIVEKIT_SERVER_BIN && existsSync(process.env.LIVEKIT_SERVER_BIN))
    return process.env.LIVEKIT_SERVER_BIN;
  const cached = join(livekitCacheDir(), 'server');
  if (existsSync(cached)) return cached;
  const installed = onPath('livekit-server');
  if (installed) return installed;
  if (!build || !onPath('go')) return undefined;
  mkdirSync(livekitCacheDir(), { recursive: true });
  console.log(
    `building livekit-server ${LIVEKIT_SERVER_VERSION} into ${livekitCacheDir()} (once per machine)…`,
  );
  execFileSync(
    'go',
    ['install', `github.com/livekit/livekit-server/cmd/server@${LIVEKIT_SERVER_VERSION}`],
    {
      env: { ...process.env, GOBIN: livekitCacheDir(), GOFLAGS: '-mod=mod' },
      stdio: 'inherit',
    },
  );
  return existsSync(cached) ? cached : undefined;
}

export type LiveKit = {
  url: string;
  httpUrl: string;
  port: number;
  proc: Proc;
  stop(): Promise<void>;
};

/** `server --dev` on loopback only, with free ports and webhooks pointed at `webhookUrl`. */
export async function startLiveKit(
  bin: string,
  dir: string,
  opts: {
    webhookUrl?: string;
    departureTimeout?: number;
    ports?: [number, number, number];
    /** One of several nodes sharing this Redis (`host:port`): LiveKit's multi-node routing. */
    redis?: string;
  } = {},
): Promise<LiveKit> {
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, 'livekit.log');
  // A port the OS said was free can be taken before the server binds it (an outgoing connection
  // gets it as its ephemeral port; the RTC TCP port binds on every interface): then the server
  // exits with "address already in use", and it starts again on other ports.
  for (let attempt = 1; ; attempt++) {
    const [port, tcp, udp] = opts.ports ?? [await freePort(), await freePort(), await freePort()];
    const config = [
      `port: ${port}`,
      'bind_addresses: [127.0.0.1]',
      `keys: { ${DEV_KEY}: ${DEV_SECRET} }`,
      'rtc:',
      `  tcp_port: ${tcp}`,
      `  udp_port: ${udp}`,
      '  use_external_ip: false',
      '  node_ip: 127.0.0.1',
      '  enable_loopback_candidate: true',
      '  ips: { includes: [127.0.0.1/32] }',
      '  stun_servers: [127.0.0.1:3478]',
      `room: { empty_timeout: 120, departure_timeout: ${opts.departureTimeout ?? 20} }`,
      'logging: { level: info }',
      ...(opts.redis ? [`redis: { address: ${opts.redis} }`] : []),
      ...(opts.webhookUrl
        ? ['webhook:', `  api_key: ${DEV_KEY}`, `  urls: [${opts.webhookUrl}]`]
        : []),
    ].join('\n');
    const configFile = join(dir, 'livekit.yaml');
    writeFileSync(configFile, config);
    const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
    const proc = startProcess(bin, ['--dev', '--config', configFile], { logFile });
    const httpUrl = `http://127.0.0.1:${port}`;
    const outcome = await waitFor(
      'LiveKit server',
      async () =>
        proc.child.exitCode !== null || proc.child.signalCode !== null
          ? 'exited'
          : (await httpOk(httpUrl)) && 'ready',
      { timeoutMs: 30_000 },
    );
    if (outcome === 'ready')
      return {
        url: `ws://127.0.0.1:${port}`,
        httpUrl,
        port,
        proc,
        stop: () => proc.stop('SIGTERM'),
      };
    await proc.exited;
    // Its last words reach the log file just after it exits.
    const log = await waitFor(
      'LiveKit log',
      async () => {
        const text = readFileSync(logFile, 'utf8').slice(logStart);
        return /address already in use/.test(text) && text;
      },
      { timeoutMs: 2_000 },
    ).catch(() => readFileSync(logFile, 'utf8').slice(logStart));
    if (opts.ports || attempt >= 3 || !/address already in use/.test(log))
      throw new Error(`LiveKit server exited before it was ready:\n${log.slice(-1000)}`);
  }
}
