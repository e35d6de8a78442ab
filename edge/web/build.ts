// Builds the call page and the calls console into dist/web, which wrangler serves as Workers Static Assets (same origin
// as /token). wrangler runs this before `wrangler dev` and `wrangler deploy` ([build] in wrangler.toml).
import { build } from 'esbuild';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

const here = import.meta.dirname;
const out = resolve(here, '../../dist/web');

// A file is written only when its bytes change: every running `wrangler dev` watches dist/web and
// restarts when it changes, and a restart can lose its own port to the socket it is replacing
// ("Address already in use"), as when several start at once (the e2e files run side by side).
function writeIfChanged(path: string, bytes: Uint8Array): void {
  if (existsSync(path) && Buffer.compare(readFileSync(path), bytes) === 0) return;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}

const bundle = await build({
  entryPoints: { 'call-page': join(here, 'main.ts'), console: join(here, 'console/main.ts') },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome110', 'safari16', 'firefox110'],
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
  write: false,
});
for (const file of bundle.outputFiles) writeIfChanged(file.path, file.contents);
for (const file of [
  'index.html',
  'call-page.css',
  'favicon.svg',
  '_headers',
  'console/console.html',
  'console/console.css',
])
  writeIfChanged(join(out, basename(file)), readFileSync(join(here, file)));
