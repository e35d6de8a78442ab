import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ParticipantKind, RoomEvent, type RemoteParticipant, type Room } from '@livekit/rtc-node';
import { EventEmitter } from 'node:events';
import { CallerPresence, waitForCaller } from '../../agent/call/caller-presence.ts';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

function presence(graceMs = 10_000) {
  const inRoom = new Set<string>();
  const reasons: string[] = [];
  const p = new CallerPresence({
    graceMs,
    caller: () => 'alice',
    present: (identity) => inRoom.has(identity),
    onGone: (reason) => void reasons.push(reason),
    log: () => {},
  });
  return { p, inRoom, gone: () => reasons.length, reasons };
}

describe('whether the caller is still on the call', () => {
  it.each(['CLIENT_INITIATED', 'USER_REJECTED'])(
    'a %s leave ends the call at once: they left',
    (reason) => {
      const { p, reasons } = presence();
      p.left('alice', reason);
      expect(reasons).toEqual(['participant_left']);
    },
  );

  it('a ROOM_DELETED leave ends the call at once as room_deleted: the caller did not hang up', () => {
    const { p, reasons } = presence();
    p.left('alice', 'ROOM_DELETED');
    expect(reasons).toEqual(['room_deleted']);
  });

  it('once stopped (the call is ending), a late drop arms nothing', () => {
    const { p, gone } = presence();
    p.stop();
    p.left('alice', 'SIGNAL_CLOSE');
    vi.advanceTimersByTime(60_000);
    expect(gone()).toBe(0);
  });

  it.each(['SIGNAL_CLOSE', 'CONNECTION_TIMEOUT', 'JOIN_FAILURE', undefined])(
    'a %s drop waits the grace, then ends the call',
    (reason) => {
      const { p, gone } = presence();
      p.left('alice', reason);
      vi.advanceTimersByTime(9_999);
      expect(gone()).toBe(0);
      vi.advanceTimersByTime(1);
      expect(gone()).toBe(1);
    },
  );

  it('a caller back within the grace keeps the call going', () => {
    const { p, gone } = presence();
    p.left('alice', 'SIGNAL_CLOSE');
    vi.advanceTimersByTime(5_000);
    p.joined('alice');
    vi.advanceTimersByTime(60_000);
    expect(gone()).toBe(0);
  });

  it('ignores the old device leaving when the same identity is already back in the room', () => {
    const { p, inRoom, gone } = presence();
    inRoom.add('alice');
    p.left('alice', 'SIGNAL_CLOSE');
    vi.advanceTimersByTime(60_000);
    expect(gone()).toBe(0);
  });

  it('ignores a DUPLICATE_IDENTITY leave: the same caller joined from another device', () => {
    const { p, gone } = presence();
    p.left('alice', 'DUPLICATE_IDENTITY');
    vi.advanceTimersByTime(60_000);
    expect(gone()).toBe(0);
  });

  it('ignores other participants', () => {
    const { p, gone } = presence();
    p.left('bob', 'CLIENT_INITIATED');
    expect(gone()).toBe(0);
  });

  it('with no grace configured, any drop ends the call at once', () => {
    const { p, gone } = presence(0);
    p.left('alice', 'SIGNAL_CLOSE');
    expect(gone()).toBe(1);
  });
});

describe('who the caller is when the dispatch names none', () => {
  const participant = (identity: string, kind: ParticipantKind) =>
    ({ identity, info: { kind } }) as unknown as RemoteParticipant;
  function fakeRoom(...present: RemoteParticipant[]) {
    const room = new EventEmitter() as EventEmitter & {
      remoteParticipants: Map<string, RemoteParticipant>;
    };
    room.remoteParticipants = new Map(present.map((p) => [p.identity, p]));
    return room as unknown as Room & EventEmitter;
  }

  it.each([ParticipantKind.INGRESS, ParticipantKind.EGRESS, ParticipantKind.BRIDGE])(
    'a participant of kind %s already in the room is passed over for the person who joins',
    async (kind) => {
      const room = fakeRoom(participant('stream', kind));
      const caller = waitForCaller(room);
      room.emit(RoomEvent.ParticipantConnected, participant('bridge-2', ParticipantKind.AGENT));
      room.emit(RoomEvent.ParticipantConnected, participant('person', ParticipantKind.SIP));
      expect((await caller).identity).toBe('person');
    },
  );

  it('takes the named caller whatever its kind, and rejects when the room goes first', async () => {
    const room = fakeRoom(participant('named', ParticipantKind.STANDARD));
    expect((await waitForCaller(room, 'named')).identity).toBe('named');
    const waiting = waitForCaller(fakeRoom(), 'absent');
    const empty = fakeRoom();
    const rejected = waitForCaller(empty);
    empty.emit(RoomEvent.Disconnected);
    await expect(rejected).rejects.toThrow(/disconnected/);
    void waiting.catch(() => {});
  });
});
