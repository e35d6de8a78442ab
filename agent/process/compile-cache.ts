import { accessSync, constants as fs, mkdirSync } from 'node:fs';
import module from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../../wire-contract/index.ts';

/**
 * Node's module compile cache for the worker and every job process it forks. A job process spends
 * nearly all of its start loading ~1,600 module files (docs/benchmarks.md, bench:job-start); the
 * cache keeps V8's compiled code on disk, so each process after the first on a host skips most of
 * the compiling. A job process cannot turn it on itself (agents-js's runner loads everything before
 * our code runs), so the worker hands it down as NODE_COMPILE_CACHE, which `fork` passes on with
 * the rest of its environment: call this before agents-js forks its first job process.
 *
 * The directory: NODE_COMPILE_CACHE when the operator (or the image) sets it, Node then having
 * already enabled it for this process; else Node's own default, `<tmpdir>/node-compile-cache`,
 * shared by every process of the host (Node keys the entries by its version, V8 flags and user,
 * and each by the file's path and content, so a new Node or a new build never reads stale code).
 * NODE_DISABLE_COMPILE_CACHE=1 turns it off. The cache is only ever a speed-up: a directory that
 * cannot be made or written leaves it off and the worker runs as before. Only the directory itself
 * is made, never its parents: a TMPDIR that does not exist must stay so (the drain file and the
 * job-start marks count on the temp dir being what the operator gave). The check is ours, and so
 * is the directory's making: Node 22's own (enableCompileCache, and mkdirSync's `recursive`)
 * spins forever where mkdir answers ENOENT under a parent that exists (a directory under /proc).
 */
export type CompileCache =
  { enabled: true; directory: string } | { enabled: false; reason: string };

export function enableCompileCache(
  env: Record<string, string | undefined> = process.env,
  enable: (dir: string) => module.EnableCompileCacheResult = module.enableCompileCache,
): CompileCache {
  if (env.NODE_DISABLE_COMPILE_CACHE) return { enabled: false, reason: 'disabled' };
  const dir = env.NODE_COMPILE_CACHE || join(tmpdir(), 'node-compile-cache');
  try {
    makeDir(dir);
    accessSync(dir, fs.W_OK);
  } catch (err) {
    return { enabled: false, reason: `cannot use ${dir}: ${errorMessage(err)}` };
  }
  let result: module.EnableCompileCacheResult;
  try {
    result = enable(dir);
  } catch (err) {
    return { enabled: false, reason: `cannot use ${dir}: ${errorMessage(err)}` };
  }
  const { ENABLED, ALREADY_ENABLED } = module.constants.compileCacheStatus;
  if (result.status !== ENABLED && result.status !== ALREADY_ENABLED)
    return { enabled: false, reason: result.message ?? `status ${result.status}` };
  // The job processes inherit it from here.
  env.NODE_COMPILE_CACHE = dir;
  return { enabled: true, directory: result.directory ?? dir };
}

/** The directory, under a parent that must exist (see above for why not `recursive`). */
function makeDir(dir: string) {
  try {
    mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}
