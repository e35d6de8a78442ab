import type { LocalParticipant } from '@livekit/rtc-node';
import type { LogFn } from '../log.ts';

const isAbort = (err: unknown) => err instanceof Error && err.name === 'AbortError';
/** Participants already wrapped: a reconnection reports "connected" again. */
const settled = new WeakSet<object>();

/**
 * Makes an attribute write that the room's disconnect cuts short resolve instead of reject.
 *
 * agents-js's RoomIO publishes every agent-state change (`lk.agent.state`) with
 * `room.localParticipant.setAttributes`, looked up at each call (which lets this wrap it; pinned
 * by the RoomIO contract test in test/agent/attribute-writes.test.ts), and logs a rejection at
 * error level. The Rust SDK under rtc-node registers its wait for the server's answer only after
 * sending the request (livekit/rust-sdks `set_attributes`, then `get_response`), so an answer
 * that comes back fast is dropped and the write settles only at the SDK's 5 s request timeout.
 * Reproduced here against livekit-server v1.13.5: of two writes a few ms apart, one went
 * unanswered; before this module, 2 of 6 clean calls logged `Failed to update agent state
 * attributes`, because the room went inside that window (whoever ends the call) and rtc-node
 * aborted the write. The server has applied the attribute by then, and the participant it
 * belongs to is gone: there is nothing to report, so the abort is logged here at debug level;
 * every other failure still rejects. Once per participant.
 */
export function settleAttributeWritesCutByDisconnect(
  participant: Pick<LocalParticipant, 'setAttributes'>,
  log: LogFn,
): void {
  if (settled.has(participant)) return;
  settled.add(participant);
  const write = participant.setAttributes.bind(participant);
  participant.setAttributes = (attributes) =>
    write(attributes).catch((err: unknown) => {
      if (!isAbort(err)) throw err;
      log('debug', 'attribute write cut short by the disconnect', {
        keys: Object.keys(attributes),
      });
    });
}
