import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig, shutdownBudget } from '../../agent/config.ts';

const fly = parse(readFileSync('fly.toml', 'utf8')) as any;
const dockerfile = readFileSync('agent/Dockerfile', 'utf8');
// The agent as Fly runs it: fly.toml's [env] over the defaults, secrets present.
const config = loadAgentConfig({
  ...fly.env,
  LIVEKIT_URL: 'wss://example.livekit.cloud',
  LIVEKIT_API_KEY: 'k',
  LIVEKIT_API_SECRET: 's',
  OPENAI_API_KEY: 'sk',
});

describe('fly.toml, the Dockerfile and the agent timeouts agree', () => {
  it("kill_timeout covers the drain window, every call's end and the worker close, within Fly's 300 s cap", () => {
    expect(['SIGTERM', 'SIGINT']).toContain(fly.kill_signal);
    expect(fly.kill_timeout).toBeLessThanOrEqual(300);
    expect(fly.kill_timeout * 1000).toBeGreaterThanOrEqual(
      shutdownBudget(config).requiredKillTimeoutMs,
    );
  });

  it('checks the agent health port, deploys rolling (Fly has no bluegreen with volumes), and exposes no service that could auto-stop calls', () => {
    const checks = Object.values(fly.checks ?? {}) as any[];
    expect(fly.deploy.strategy).toBe('rolling');
    expect(checks.length).toBeGreaterThan(0);
    for (const check of checks) {
      expect(['http', 'tcp']).toContain(check.type);
      expect(check.port).toBe(config.AGENT_HEALTH_PORT);
    }
    expect(fly.http_service).toBeUndefined();
    expect(fly.services).toBeUndefined();
    expect(fly.build.dockerfile).toBe('agent/Dockerfile');
  });

  it('the report outbox is on the Machine’s volume, in a folder of its own', () => {
    const mounts = ([] as any[]).concat(fly.mounts ?? []);
    expect(mounts).toHaveLength(1);
    expect(mounts[0].source).toBeTruthy();
    const outbox = fly.env.REPORT_OUTBOX_DIR as string;
    expect(outbox.startsWith(`${mounts[0].destination}/`)).toBe(true);
    expect(config.REPORT_OUTBOX_DIR).toBe(outbox);
  });

  it('Fly scrapes the port the worker serves /metrics on', () => {
    expect(fly.metrics).toEqual({ port: config.AGENT_METRICS_PORT, path: '/metrics' });
    expect(config.AGENT_METRICS_PORT).not.toBe(config.AGENT_HEALTH_PORT);
  });

  it("fly deploy uploads only what the Dockerfile copies: fly.toml names the Dockerfile's ignore file", () => {
    expect(fly.build.ignorefile).toBe('agent/Dockerfile.dockerignore');
    const ignore = readFileSync(fly.build.ignorefile, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    // An allow-list: everything out, then only the build's inputs back in.
    expect(ignore[0]).toBe('*');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    expect(allowed.sort()).toEqual(
      ['agent/', 'package-lock.json', 'package.json', 'tsconfig.json', 'wire-contract/'].sort(),
    );
    expect(ignore).toEqual(expect.arrayContaining(['**/node_modules', '**/.dev.vars*']));
    for (const copied of dockerfile.matchAll(/^COPY\s+(?!--from)(.+)\s+\S+$/gm))
      for (const src of copied[1]!.split(/\s+/))
        expect(
          allowed.some(
            (a) => src === a || `${src}/` === a || (a.endsWith('/') && src.startsWith(a)),
          ),
        ).toBe(true);
  });

  it('the image is glibc Node 22, becomes the app user before node, and runs node (exec form) in start mode', () => {
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    // A Debian release, not a moving `slim`; its digest is pinned at the first real build.
    expect(froms[0]).toMatch(/^node:22-bookworm-slim(@sha256:[0-9a-f]{64})?$/);
    if (!froms[0]!.includes('@sha256:'))
      expect(dockerfile).toMatch(/docker buildx imagetools inspect node:22-bookworm-slim/);
    expect(dockerfile).not.toMatch(/alpine/);
    // Root only in the entrypoint, which `exec`s setpriv to the app user, which `exec`s node.
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/local\/bin\/agent-entrypoint"\]$/m);
    const entrypoint = readFileSync('agent/entrypoint.sh', 'utf8');
    const uid = /^APP_UID=(\d+)$/m.exec(entrypoint)?.[1];
    expect(dockerfile).toMatch(new RegExp(`useradd --uid ${uid} `));
    expect(entrypoint).toMatch(/exec setpriv --reuid="\$APP_UID" --regid="\$APP_UID" .*-- "\$@"/);
    expect(entrypoint).toMatch(/^exec "\$@"$/m);
    const cmd = /^CMD\s+(\[.*\])\s*$/m.exec(dockerfile);
    expect(cmd).not.toBeNull();
    const argv = JSON.parse(cmd![1]!) as string[];
    expect(argv[0]).toBe('node');
    expect(argv.at(-1)).toBe('start');
    expect(argv[1]).toBe('dist/agent/main.js');
    expect(dockerfile).toMatch(/EXPOSE\s+8081/);
  });

  it("the app files are root's (read-only to the app user), its HOME is its own, and npm's secrets stay out of layers", () => {
    const runtime = dockerfile.slice(dockerfile.search(/^FROM\s+\S+\s+AS\s+runtime/m));
    expect(runtime).toMatch(/^COPY --from=build /m);
    expect(runtime).not.toMatch(/--chown/);
    const home = /^ENV\s+.*\bHOME=(\S+)/m.exec(runtime)?.[1];
    expect(home).toBeDefined();
    expect(home).not.toMatch(/^\/app\b/);
    expect(runtime).toMatch(new RegExp(`useradd .*--create-home --home-dir ${home}`));
    expect(dockerfile).toMatch(/--mount=type=secret,id=npmrc/);
    expect(dockerfile).not.toMatch(/^(COPY|ADD)\s.*npmrc/m);
    expect(dockerfile).not.toMatch(/^(ARG|ENV)\s.*(TOKEN|NPM_CONFIG)/m);
  });
});

describe('agent config', () => {
  it('names every missing variable', () => {
    expect(() =>
      loadAgentConfig({ LIVEKIT_URL: 'ws://x', LIVEKIT_API_SECRET: 'supersecretvalue' }),
    ).toThrow(/LIVEKIT_API_KEY[\s\S]*OPENAI_API_KEY/);
  });

  it('names a bad variable and never prints a value', () => {
    let error: unknown;
    try {
      loadAgentConfig({ LIVEKIT_API_SECRET: 'supersecretvalue', END_MODE: 'explode' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(Error);
    expect(String(error)).toContain('END_MODE');
    expect(String(error)).not.toContain('supersecretvalue');
  });
});
