// Builds the call page and the calls console into dist/web, which wrangler serves as Workers Static Assets (same origin
// as /token). wrangler runs this before `wrangler dev` and `wrangler deploy` ([build] in wrangler.toml).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

const here = import.meta.dirname;
const out = resolve(here, '../../dist/web');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { 'call-page': join(here, 'main.ts'), console: join(here, 'console/main.ts') },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome110', 'safari16', 'firefox110'],
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
});
for (const file of [
  'index.html',
  'call-page.css',
  'favicon.svg',
  '_headers',
  'console/console.html',
  'console/console.css',
])
  copyFileSync(join(here, file), join(out, basename(file)));
