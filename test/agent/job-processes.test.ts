// How the worker counts its job processes for /metrics (agent/process/job-processes.ts): from
// /proc, by agents-js's job runner in a child's command line. Pinned against the real thing: the
// runner agents-js forks is the file this looks for, and a real child process running a file of
// that name is counted while one running anything else is not.
import { fork } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobProcessCount } from '../../agent/process/job-processes.ts';
import { waitFor } from '../support/processes.ts';

describe('the worker’s job processes, counted from /proc', () => {
  it('agents-js forks its job runner by the file name the count looks for', () => {
    const dist = dirname(createRequire(import.meta.url).resolve('@livekit/agents'));
    expect(existsSync(join(dist, 'ipc/job_proc_lazy_main.js'))).toBe(true);
    const executor = join(dist, 'ipc/job_proc_executor.js');
    expect(readFileSync(executor, 'utf8')).toMatch(
      /new URL\(`\.\/job_proc_lazy_main\$\{currentFileExtension\}`/,
    );
  });

  it('counts this process’s children that run the job runner, and no others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'job-procs-'));
    const idle = 'setInterval(() => {}, 1000);';
    writeFileSync(join(dir, 'job_proc_lazy_main.js'), idle);
    writeFileSync(join(dir, 'inference_proc_lazy_main.js'), idle);
    const before = jobProcessCount();
    const children = [
      fork(join(dir, 'job_proc_lazy_main.js'), [], { stdio: 'ignore' }),
      fork(join(dir, 'job_proc_lazy_main.js'), [], { stdio: 'ignore' }),
      fork(join(dir, 'inference_proc_lazy_main.js'), [], { stdio: 'ignore' }),
    ];
    try {
      await waitFor('the children counted', async () =>
        jobProcessCount() === before! + 2 ? true : undefined,
      );
      children[0]!.kill();
      await waitFor('one gone', async () => (jobProcessCount() === before! + 1 ? true : undefined));
    } finally {
      for (const c of children) c.kill();
    }
  });

  it('no /proc to read: no count', () => {
    expect(jobProcessCount(process.pid, '/nonexistent-proc')).toBeUndefined();
  });
});
