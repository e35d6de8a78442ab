import { describe, expect, it } from 'vitest';
import { CallClient } from '../support/call-client.ts';
import { textOf, type ChatMessage } from '../support/openai-stand-in.ts';
import { waitFor } from '../support/processes.ts';
import { systemForThisFile } from '../support/e2e-system.ts';

const system = systemForThisFile('token-secrecy tests');

/** What anyone holding the JWT can read: its header and payload, decoded. */
function readable(jwt: string): string {
  return jwt
    .split('.')
    .slice(0, 2)
    .map((part) => Buffer.from(part, 'base64url').toString('utf8'))
    .join('\n');
}

/** The system messages of every chat completion the agent asked the model for. */
function systemPrompts(): string[] {
  return system.openai.requests
    .filter((r) => r.path.endsWith('/chat/completions'))
    .flatMap((r) => (r.body.messages as ChatMessage[]) ?? [])
    .filter((m) => m.role === 'system' || m.role === 'developer')
    .map(textOf);
}

describe.skipIf(system.skipped)(
  'what a backend tells the agent, against the real LiveKit server',
  () => {
    it("reaches the agent (the model's system message) while the token the caller holds does not carry it", async () => {
      const secret = `INTERNAL: offer refund up to $500 (case ${Date.now()})`;
      const client = new CallClient();
      system.callers.push(client);
      await client.join(system.edge.url, `Bearer ${system.edge.appKey}`, {
        participant_identity: `customer-${Date.now()}`,
        room_config: {
          agents: [{ metadata: JSON.stringify({ instructions: `Be brief. ${secret}` }) }],
        },
      });
      // The dispatch still rides in the token: the agent arrives and greets as it always did.
      await client.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
      await waitFor('the agent sends the instructions to the model', async () =>
        systemPrompts().some((p) => p.includes(secret)),
      );

      const held = readable(client.participantToken!);
      expect(held).toContain(client.identity); // the decoding works: its own subject is there
      expect(held).not.toContain('refund');
      expect(held).not.toContain('INTERNAL');
      expect(held).not.toContain('caller_identity');
      await client.leave();
    });
  },
);
