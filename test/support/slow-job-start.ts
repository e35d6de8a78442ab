/**
 * Preloaded into an agent worker (`NODE_OPTIONS=--import=<this file>`) by tests that need
 * agents-js's job processes to start slowly, as on a loaded machine. Only a job process (not the
 * worker, not the inference process) is affected: it writes one line to the worker's log saying it
 * was forked, then blocks `SLOW_JOB_START_MS` before loading. The pool starts its processes one at
 * a time, so the ones behind it wait their turn unstarted for that long.
 */
if (process.argv[1]?.endsWith('job_proc_lazy_main.js')) {
  console.error(JSON.stringify({ msg: 'test: job process forked', pid: process.pid }));
  Atomics.wait(
    new Int32Array(new SharedArrayBuffer(4)),
    0,
    0,
    Number(process.env.SLOW_JOB_START_MS),
  );
}
