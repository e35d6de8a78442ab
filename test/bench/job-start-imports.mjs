// Run by bench:job-start in a fresh Node: loads what a job process loads, in the order it loads
// it, and prints (JSON) the CPU and wall ms each step added. A module two steps share counts in the
// first. Plain JavaScript importing nothing before it measures (a .ts file would load Node's type
// stripper first). argv[2]: JSON list of { label, specifier, require? }. With argv[3] = --count it
// prints how many module files were loaded instead (a loader hook, so no timing then).
import { createRequire, registerHooks } from 'node:module';

const require = createRequire(import.meta.url);
const counting = process.argv[3] === '--count';
const files = new Set();
if (counting)
  registerHooks({
    load(url, context, next) {
      if (!url.startsWith('node:')) files.add(url);
      return next(url, context);
    },
  });
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
let cpu = cpuMs();
let wall = performance.now();
const steps = [
  { label: 'Node start (to the first line of this script)', cpuMs: cpu, wallMs: wall },
];
for (const { label, specifier, require: cjs } of JSON.parse(process.argv[2])) {
  if (cjs) require(specifier);
  else await import(specifier);
  const [c, w] = [cpuMs(), performance.now()];
  steps.push({ label, cpuMs: c - cpu, wallMs: w - wall });
  [cpu, wall] = [c, w];
}
console.log(JSON.stringify(counting ? { modules: files.size } : steps));
