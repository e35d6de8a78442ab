// Preloaded by bench:job-start into its agent worker (NODE_OPTIONS=--import=…, which every process
// the worker forks inherits). In a job process it takes the first start mark, `node-ready`: Node
// has started and no module of agents-js or ours has loaded yet. Plain JavaScript importing nothing,
// so that it costs the job process next to nothing (a .ts file would load Node's type stripper);
// the line has the shape of agent/process/start-marks.ts's StartMark.
import { appendFileSync } from 'node:fs';

const file = process.env.AGENT_START_MARKS;
if (file && process.argv[1]?.includes('job_proc_lazy_main')) {
  const { user, system } = process.cpuUsage();
  const wallMs = performance.now();
  const mark = {
    pid: process.pid,
    phase: 'node-ready',
    at: performance.timeOrigin + wallMs,
    wallMs,
    cpuMs: (user + system) / 1000,
  };
  appendFileSync(file, `${JSON.stringify(mark)}\n`);
}
