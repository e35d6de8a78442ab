import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startAgentWorker } from '../support/agent-worker.ts';
import { DEV_KEY, DEV_SECRET, startLiveKit, type LiveKit } from '../support/livekit-server.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = inject('livekitServerBin');
let livekit: LiveKit;
const dir = mkdtempSync(join(tmpdir(), 'lkvc-worker-'));

beforeAll(async () => {
  if (bin) livekit = await startLiveKit(bin, dir);
});
afterAll(() => livekit?.stop());

describe.skipIf(!bin)('the built agent in start mode', () => {
  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    'registers (health 200), then on %s with no call drains and exits %i',
    async (signal, code) => {
      const worker = await startAgentWorker(
        dir,
        {
          LIVEKIT_URL: livekit.url,
          LIVEKIT_API_KEY: DEV_KEY,
          LIVEKIT_API_SECRET: DEV_SECRET,
          OPENAI_API_KEY: 'sk-unused',
        },
        `worker-${signal}`,
      );
      const info = (await (await fetch(`${worker.healthUrl}/worker`)).json()) as {
        agent_name: string;
        active_jobs: number;
      };
      expect(info).toMatchObject({ agent_name: 'voice-agent', active_jobs: 0 });
      worker.proc.child.kill(signal);
      expect((await worker.proc.exited).code).toBe(code);
    },
  );
});
