// `npm run dev` starts here: plain JavaScript any Node can parse, so an older Node says what it
// needs instead of failing on TypeScript syntax. scripts/dev.ts (the whole system) runs on Node's
// own type stripping, on by default from Node 22.18 (package.json `engines`).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    [
      `npm run dev needs Node >= 22.18; this is Node ${process.versions.node} (${process.execPath}).`,
      "The project runs its TypeScript with Node's built-in type stripping, on by default from 22.18.",
      'Install Node 22 LTS (e.g. `nvm install 22`), or without a version manager:',
      '  npm install --prefix ~/.cache/livekit-voice-calls/node22 --no-save node@22',
      '  export PATH="$HOME/.cache/livekit-voice-calls/node22/node_modules/.bin:$PATH"',
    ].join('\n'),
  );
  process.exit(1);
}
import('./dev.ts').catch((err) => {
  console.error(err);
  process.exit(1);
});
