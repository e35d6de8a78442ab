import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { enableCompileCache } from '../../agent/process/compile-cache.ts';

const MODULE = resolve(import.meta.dirname, '../../agent/process/compile-cache.ts');

/** Every file under `dir`, however deep (Node nests its entries by version and user). */
const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);

describe("the job processes' module compile cache", () => {
  it('is handed to the processes the worker forks, and they fill one directory of the host', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'lkvc-compile-cache-'));
    const jobModule = join(tmp, 'job.mjs');
    writeFileSync(jobModule, 'export const answer = 42;\n');
    const jobMain = join(tmp, 'job-main.mjs');
    writeFileSync(
      jobMain,
      `import module from 'node:module';
      await import(${JSON.stringify(jobModule)});
      console.log(JSON.stringify({ job: module.getCompileCacheDir() ?? null }));
      process.disconnect();`,
    );
    // A worker (a real Node, TMPDIR pointing here) turns the cache on, then forks a job process
    // (as agents-js does: the worker's environment) that loads a module file and says whether its
    // own cache is on, and where.
    const worker = `
      import { fork } from 'node:child_process';
      import { enableCompileCache } from ${JSON.stringify(MODULE)};
      console.log(JSON.stringify({ worker: enableCompileCache() }));
      fork(${JSON.stringify(jobMain)}, [], { execArgv: [] }); // not this -e script's flags
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', worker], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, TMPDIR: tmp },
    });
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const dir = join(tmp, 'node-compile-cache');
    expect(lines).toContainEqual({
      worker: { enabled: true, directory: expect.stringContaining(dir) },
    });
    expect(lines).toContainEqual({ job: expect.stringContaining(dir) });
    // Written at the job process's exit: the next process on this host reads it.
    expect(filesUnder(dir).length).toBeGreaterThan(0);
  });

  it('keeps an operator-set directory, and stays off when told to', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lkvc-compile-cache-set-'));
    const env: Record<string, string | undefined> = { NODE_COMPILE_CACHE: dir };
    const enable = vi.fn(() => ({ status: 2, directory: join(dir, 'v22') })); // ALREADY_ENABLED
    expect(enableCompileCache(env, enable)).toEqual({ enabled: true, directory: join(dir, 'v22') });
    expect(enable).toHaveBeenCalledWith(dir);
    expect(env.NODE_COMPILE_CACHE).toBe(dir);

    const off: Record<string, string | undefined> = { NODE_DISABLE_COMPILE_CACHE: '1' };
    expect(enableCompileCache(off, enable)).toEqual({ enabled: false, reason: 'disabled' });
    expect(off.NODE_COMPILE_CACHE).toBeUndefined();
  });

  it('leaves the worker running without it when the directory cannot be made or written', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'lkvc-compile-cache-bad-')), 'a-file');
    writeFileSync(file, '');
    // Node 22 itself would spin forever on the /proc one: it must never be handed such a path.
    for (const bad of [join(file, 'cache'), '/proc/lkvc-no-such-dir/cache']) {
      const env: Record<string, string | undefined> = { NODE_COMPILE_CACHE: bad };
      const enable = vi.fn();
      const result = enableCompileCache(env, enable);
      expect(result).toMatchObject({ enabled: false, reason: expect.stringContaining(bad) });
      expect(enable).not.toHaveBeenCalled();
    }
    // A TMPDIR that does not exist stays so: making it (as root, anything can be made) would make
    // the drain file work where the worker was told there is no temp dir (seen in CI).
    const missing = join(mkdtempSync(join(tmpdir(), 'lkvc-compile-cache-missing-')), 'no-tmp');
    vi.stubEnv('TMPDIR', missing);
    try {
      const env: Record<string, string | undefined> = {};
      expect(enableCompileCache(env, vi.fn())).toMatchObject({ enabled: false });
      expect(existsSync(missing)).toBe(false);
      expect(env.NODE_COMPILE_CACHE).toBeUndefined();
    } finally {
      vi.unstubAllEnvs();
    }
    // Node refusing it (its own checks) is the same: off, nothing handed to the jobs.
    vi.stubEnv('TMPDIR', mkdtempSync(join(tmpdir(), 'lkvc-compile-cache-refused-')));
    try {
      const env: Record<string, string | undefined> = {};
      const refuse = () => ({ status: 0, message: 'Cannot create cache directory' });
      expect(enableCompileCache(env, refuse)).toEqual({
        enabled: false,
        reason: 'Cannot create cache directory',
      });
      expect(env.NODE_COMPILE_CACHE).toBeUndefined();
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
