import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { endedInWords } from '../../edge/web/call-messages.ts';
import {
  CALL_END_TOPIC,
  END_REASON_ATTRIBUTE,
  END_REASON_VALUES,
  END_REASONS,
} from '../../wire-contract/index.ts';

/**
 * docs/clients.md's end notice is what mobile and server developers copy into their apps: its
 * tables must say what the contract and the call page say, word for word.
 */
const doc = readFileSync(resolve(import.meta.dirname, '../../docs/clients.md'), 'utf8');
const section = doc.slice(doc.indexOf('## The end notice'), doc.indexOf('## The edge'));
/** The rows `| \`key\` | words |` of the section's tables. */
const rows = new Map(
  [...section.matchAll(/^\| `([A-Za-z_]+)` +\| (.+?) +\|$/gm)].map((m) => [m[1]!, m[2]!]),
);

describe("the clients' end notice (docs/clients.md)", () => {
  it.each(END_REASON_VALUES.map((r) => [r]))('words the end reason %s as the contract does', (r) =>
    expect(rows.get(r)).toBe(END_REASONS[r].clientMessage),
  );

  it.each([
    'ROOM_DELETED',
    'ROOM_CLOSED',
    'CLIENT_INITIATED',
    'PARTICIPANT_REMOVED',
    'DUPLICATE_IDENTITY',
    'SERVER_SHUTDOWN',
  ])('words LiveKit’s disconnect %s as the call page does', (d) =>
    expect(rows.get(d)).toBe(endedInWords({ disconnect: d })),
  );

  it('the snippets say only those words, whole (no sentence cut short, none of their own)', () => {
    const known = new Set([
      ...END_REASON_VALUES.map((r) => END_REASONS[r].clientMessage),
      ...[...rows.keys()].filter((k) => k.toUpperCase() === k).map((d) => rows.get(d)!),
      endedInWords({}), // LiveKit said nothing the page knows: the connection was lost
      endedInWords({ reason: 'a_reason_newer_than_the_client' }),
    ]);
    const code = [...doc.matchAll(/^```\w+\n([\s\S]*?)^```/gm)].map((m) => m[1]).join('\n');
    const said = [...code.matchAll(/["']((?:You|The|No assistant|Connection)[^"'\n]*\.)["']/g)];
    expect(said.length).toBeGreaterThan(40);
    for (const [, sentence] of said) expect(known).toContain(sentence);
  });

  it('names the topic, the payload and the attribute the wire contract uses', () => {
    expect(section).toContain(`topic **\`${CALL_END_TOPIC}\`**`);
    expect(section).toContain(`attribute **\`${END_REASON_ATTRIBUTE}\`**`);
    expect(section).toContain('**`{"reason":"<end reason>"}`**');
  });
});
