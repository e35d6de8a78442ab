// Bundles the agent for Node 22 (dist/agent/main.js and dist/agent/job.js); packages stay external
// so native bindings (rtc-node, local-inference) load from node_modules.
import { build } from 'esbuild';

await build({
  entryPoints: { main: 'agent/main.ts', job: 'agent/job.ts' },
  outdir: 'dist/agent',
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'esm',
  packages: 'external',
  sourcemap: true,
  logLevel: 'info',
});
