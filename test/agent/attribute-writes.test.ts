import { initializeLogger, log, voice } from '@livekit/agents';
import type { Room } from '@livekit/rtc-node';
import { EventEmitter } from 'node:events';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { settleAttributeWritesCutByDisconnect } from '../../agent/voice/attribute-writes.ts';

beforeAll(() => initializeLogger({ pretty: false, level: 'warn' }));

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
    settleAttributeWritesCutByDisconnect(
      p,
      (level, msg, fields) => level === 'debug' && debug.push([msg, fields]),
    );
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

/**
 * The agents-js internal the wrapper relies on, pinned: RoomIO publishes the agent's state with
 * `room.localParticipant.setAttributes` looked up at each change, so a function put there after
 * RoomIO started (when the room connects) is the one called. Real RoomIO and AgentSession; the
 * room is a stand-in with only what RoomIO touches once its inputs and outputs are off.
 */
describe('agents-js RoomIO writes the agent state through the wrapped setAttributes', () => {
  it('a write cut by the disconnect is settled, and RoomIO logs no error for it', async () => {
    const room = Object.assign(new EventEmitter(), {
      isConnected: false,
      name: 'call-contract',
      remoteParticipants: new Map(),
      localParticipant: participant(abort),
    });
    const session = new voice.AgentSession({});
    const io = new voice.RoomIO({
      agentSession: session,
      room: room as unknown as Room,
      inputOptions: { audioEnabled: false, textEnabled: false },
      outputOptions: { audioEnabled: false, transcriptionEnabled: false },
    });
    io.start();
    const errors: unknown[] = [];
    const logged = vi.spyOn(log(), 'error').mockImplementation((...a: unknown[]) => {
      errors.push(a);
    });
    try {
      // As agent/job.ts does once the room is connected: after RoomIO has started.
      room.isConnected = true;
      const debug: unknown[] = [];
      settleAttributeWritesCutByDisconnect(
        room.localParticipant,
        (level, _msg, fields) => level === 'debug' && debug.push(fields),
      );
      session.emit(
        voice.AgentSessionEventTypes.AgentStateChanged,
        voice.createAgentStateChangedEvent('listening', 'speaking'),
      );
      await vi.waitFor(() => expect(debug).toEqual([{ keys: ['lk.agent.state'] }]));
      expect(room.localParticipant.writes).toEqual([{ 'lk.agent.state': 'speaking' }]);
      expect(errors).toEqual([]);
    } finally {
      logged.mockRestore();
      await io.close();
    }
  });
});
