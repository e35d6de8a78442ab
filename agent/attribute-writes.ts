import type { LocalParticipant } from '@livekit/rtc-node';

const isAbort = (err: unknown) => err instanceof Error && err.name === 'AbortError';
/** Participants already wrapped: a reconnection reports "connected" again. */
const settled = new WeakSet<object>();

/**
 * Makes an attribute write that the agent's own disconnect cuts short resolve instead of reject.
 *
 * agents-js's RoomIO publishes every agent-state change (`lk.agent.state`) with `setAttributes`
 * and logs a rejection at error level. The Rust SDK under rtc-node registers its wait for the
 * server's answer only after sending the request, so an answer that comes back fast is dropped
 * and the write settles only at the SDK's 5 s request timeout (reproduced against livekit-server
 * v1.13.5: one write in a dozen when two overlap; livekit/rust-sdks `set_attributes` then
 * `get_response`). When the room goes in that window, whoever ends the call, rtc-node aborts the
 * write and a clean call logs `Failed to update agent state attributes`. The server has applied
 * the attribute by then, and the participant it belongs to is gone: there is nothing to report,
 * so the abort is logged here at debug level and every other failure still rejects. Once per
 * participant.
 */
export function settleAttributeWritesCutByDisconnect(
  participant: Pick<LocalParticipant, 'setAttributes'>,
  debug: (fields: object, msg: string) => void,
): void {
  if (settled.has(participant)) return;
  settled.add(participant);
  const write = participant.setAttributes.bind(participant);
  participant.setAttributes = (attributes) =>
    write(attributes).catch((err: unknown) => {
      if (!isAbort(err)) throw err;
      debug({ keys: Object.keys(attributes) }, 'attribute write cut short by the disconnect');
    });
}
