import { ParticipantKind, RoomEvent, type RemoteParticipant, type Room } from '@livekit/rtc-node';
import type { LogFn } from '../log.ts';

/**
 * Whether the caller is still on the call. A clean leave ends the call at once; any other
 * disconnect (a network switch, a full reconnect, the same identity joining from a second device)
 * gets a grace to come back with the same identity, as stock RoomIO waits for the participant.
 */
const FINAL_DISCONNECTS = new Set(['CLIENT_INITIATED', 'ROOM_DELETED', 'USER_REJECTED']);

export type PresenceOptions = {
  graceMs: number;
  /** The identity this call is linked to (known from the dispatch, or once they join). */
  caller: () => string | undefined;
  /** Whether that identity is in the room right now (a second device may have replaced the first). */
  present: (identity: string) => boolean;
  /** The caller is gone: `room_deleted` when their disconnect said the room went, else they left. */
  onGone: (reason: 'participant_left' | 'room_deleted') => void;
  log: LogFn;
};

export class CallerPresence {
  readonly #o: PresenceOptions;
  #grace: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: PresenceOptions) {
    this.#o = options;
  }

  /** `reason`: the LiveKit DisconnectReason name of the participant who left. */
  left(identity: string, reason: string | undefined): void {
    if (this.#stopped || identity !== this.#o.caller() || this.#o.present(identity)) return;
    // Replaced by the same identity joining from elsewhere: the caller is on the call.
    if (reason === 'DUPLICATE_IDENTITY') return;
    if (reason === 'ROOM_DELETED') return this.#o.onGone('room_deleted');
    if (FINAL_DISCONNECTS.has(reason ?? '') || this.#o.graceMs <= 0)
      return this.#o.onGone('participant_left');
    this.#o.log('info', 'caller dropped; waiting for them to come back', {
      reason,
      grace_ms: this.#o.graceMs,
    });
    clearTimeout(this.#grace);
    this.#grace = setTimeout(() => {
      this.#grace = undefined;
      if (!this.#stopped && !this.#o.present(identity)) this.#o.onGone('participant_left');
    }, this.#o.graceMs);
  }

  joined(identity: string): void {
    if (identity !== this.#o.caller() || !this.#grace) return;
    clearTimeout(this.#grace);
    this.#grace = undefined;
    this.#o.log('info', 'caller is back');
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#grace);
  }
}

/**
 * The participant kinds stock RoomIO links as the user (its DEFAULT_PARTICIPANT_KINDS): a person
 * on a client, on a phone (SIP) or through a connector. An ingress, egress or bridge participant is
 * a stream, never the caller: taking one would arm no grace for the person's drop, and end the
 * call when the stream leaves.
 */
const CALLER_KINDS: ReadonlySet<ParticipantKind> = new Set([
  ParticipantKind.STANDARD,
  ParticipantKind.SIP,
  ParticipantKind.CONNECTOR,
]);

export function isCallerKind(participant: Pick<RemoteParticipant, 'info'>): boolean {
  // As RoomIO: a participant whose kind the server did not say is not ruled out.
  const kind = participant.info.kind;
  return kind === undefined || CALLER_KINDS.has(kind);
}

/**
 * The caller: `identity` when the dispatch named one, else the first person to join. Rejects if
 * the room disconnects first.
 */
export function waitForCaller(
  room: Pick<Room, 'remoteParticipants' | 'on' | 'off'>,
  identity?: string,
): Promise<RemoteParticipant> {
  const fits = (p: RemoteParticipant) => (identity ? p.identity === identity : isCallerKind(p));
  for (const p of room.remoteParticipants.values()) if (fits(p)) return Promise.resolve(p);
  return new Promise((resolve, reject) => {
    const onJoin = (p: RemoteParticipant) => {
      if (!fits(p)) return;
      stop();
      resolve(p);
    };
    const onGone = () => {
      stop();
      reject(new Error('room disconnected while waiting for the caller'));
    };
    const stop = () => {
      room.off(RoomEvent.ParticipantConnected, onJoin);
      room.off(RoomEvent.Disconnected, onGone);
    };
    room.on(RoomEvent.ParticipantConnected, onJoin);
    room.on(RoomEvent.Disconnected, onGone);
  });
}
