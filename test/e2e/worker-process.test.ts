import { describe, expect, it } from 'vitest';
import { systemForThisFile } from '../support/e2e-system.ts';

// The worker alone, with no call: LiveKit and the edge it registers beside, no default worker.
const system = systemForThisFile('worker process tests', { agent: false });

describe.skipIf(system.skipped)('the built agent in start mode', () => {
  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    'registers (health 200), then on %s with no call drains and exits %i',
    async (signal, code) => {
      const worker = await system.startAgent(`worker-${signal}`);
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
