import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * How many job processes this worker has: its children that run agents-js's job runner. agents-js
 * keeps its process pool private, so the worker's /metrics counts them from /proc (Linux, as on
 * Fly): the runner is forked by path (`ipc/job_proc_lazy_main.js`, pinned by
 * test/agent/job-processes.test.ts), which names it in the child's command line. Warm ones are
 * these less the jobs running. Undefined where there is no /proc to read.
 */
export function jobProcessCount(parent = process.pid, proc = '/proc'): number | undefined {
  let pids: string[];
  try {
    pids = readdirSync(proc).filter((n) => /^\d+$/.test(n));
  } catch {
    return undefined;
  }
  let count = 0;
  for (const pid of pids) {
    try {
      // The parent pid is the 4th field, after the command's name in parentheses (which may hold
      // spaces or parentheses itself: read from the last one).
      const stat = readFileSync(join(proc, pid, 'stat'), 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const argv = readFileSync(join(proc, pid, 'cmdline'), 'utf8').split('\0');
      if (argv.some((a) => /job_proc_lazy_main\.[cm]?[jt]s$/.test(a))) count++;
    } catch {
      /* gone meanwhile */
    }
  }
  return count;
}
