import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU time in these

export type ProcessUse = { rssMiB: number; cpuSeconds: number };

/** One process's CPU seconds so far and its RSS, or undefined once it has exited. */
export function processUse(pid: number): ProcessUse | undefined {
  try {
    // Fields after the command name: state is [0]; utime, stime are [11], [12]; rss pages [21].
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      cpuSeconds: (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND,
      rssMiB: (Number(f[21]) * 4096) / 1024 / 1024,
    };
  } catch {
    return undefined; // exited between ps and /proc
  }
}

/** The worker and every process under it, with each one's use so far. */
export function processTree(root: number): Map<number, ProcessUse> {
  const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number]);
  const tree = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of rows)
      if (tree.has(pp) && !tree.has(p)) {
        tree.add(p);
        grew = true;
      }
  }
  const out = new Map<number, ProcessUse>();
  for (const pid of tree) {
    const use = processUse(pid);
    if (use) out.set(pid, use);
  }
  return out;
}
