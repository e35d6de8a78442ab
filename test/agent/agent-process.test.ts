import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('the agent program', () => {
  it('refuses to start without its credentials, naming each missing variable, exit 78', () => {
    const run = spawnSync(process.execPath, ['agent/main.ts', 'start'], {
      env: {
        PATH: process.env.PATH,
        LIVEKIT_URL: 'ws://127.0.0.1:1',
        LIVEKIT_API_SECRET: 'do-not-print-me',
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status).toBe(78);
    expect(run.stderr).toContain('LIVEKIT_API_KEY');
    expect(run.stderr).toContain('OPENAI_API_KEY');
    expect(run.stderr).not.toContain('do-not-print-me');
  });
});
