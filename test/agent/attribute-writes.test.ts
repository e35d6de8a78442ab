import { describe, expect, it } from 'vitest';
import { settleAttributeWritesCutByDisconnect } from '../../agent/attribute-writes.ts';

/** rtc-node's LocalParticipant.setAttributes, as far as the wrapper sees it. */
function participant(outcome: () => Promise<void>) {
  const writes: Record<string, string>[] = [];
  return {
    writes,
    setAttributes: (attributes: Record<string, string>) => {
      writes.push(attributes);
      return outcome();
    },
  };
}
const abort = () => Promise.reject(new DOMException('This operation was aborted', 'AbortError'));

describe('attribute writes cut short by the disconnect', () => {
  it('resolve, logged at debug with the keys; the write itself still goes out', async () => {
    const p = participant(abort);
    const debug: unknown[] = [];
    settleAttributeWritesCutByDisconnect(p, (fields, msg) => debug.push([msg, fields]));
    await expect(p.setAttributes({ 'lk.agent.state': 'listening' })).resolves.toBeUndefined();
    expect(p.writes).toEqual([{ 'lk.agent.state': 'listening' }]);
    expect(debug).toEqual([
      ['attribute write cut short by the disconnect', { keys: ['lk.agent.state'] }],
    ]);
  });

  it('any other failure still rejects', async () => {
    const p = participant(() => Promise.reject(new Error('not allowed')));
    settleAttributeWritesCutByDisconnect(p, () => {});
    await expect(p.setAttributes({ a: 'b' })).rejects.toThrow('not allowed');
  });

  it('a participant is wrapped once, however often the room reports it connected', async () => {
    const p = participant(abort);
    const debug: unknown[] = [];
    settleAttributeWritesCutByDisconnect(p, () => debug.push(1));
    const wrapped = p.setAttributes;
    settleAttributeWritesCutByDisconnect(p, () => debug.push(2));
    expect(p.setAttributes).toBe(wrapped);
    await p.setAttributes({ a: 'b' });
    expect(debug).toEqual([1]);
    expect(p.writes).toHaveLength(1);
  });
});
