import { ParticipantKind } from 'livekit-client';

/**
 * Whom the page believes. Anyone who holds a token for the room can publish data and text
 * streams, so the assistant's captions and its `call.end` notice are taken from the agent only:
 * a participant whose kind is AGENT, which LiveKit takes from the token it minted for the
 * dispatched agent and a caller's token from the edge never has. (`isAgent` in livekit-client
 * also trusts the deprecated `agent` grant; kind alone is enough.)
 */
export type Sender = { identity: string; kind: ParticipantKind } | undefined;

export const isAgent = (p: Sender): boolean => p?.kind === ParticipantKind.AGENT;

/**
 * Whose words an `lk.transcription` stream holds, from its sender in the room. LiveKit stamps a
 * stream with the identity of whoever sent it, except that an agent may send in a participant's
 * name: the caller's own words, transcribed. So a stream in the caller's name is the caller's
 * (only an agent can send one), one from the agent is the assistant's, and the rest are not shown.
 */
export function captionSpeaker(
  sender: Sender,
  localIdentity: string,
): 'you' | 'assistant' | undefined {
  if (sender && sender.identity === localIdentity) return 'you';
  return isAgent(sender) ? 'assistant' : undefined;
}

/**
 * The end reason in a `call.end` notice, if the agent sent it, or the server: the edge announces
 * an end it decides with no agent in the room (agent_unavailable) through LiveKit's server API,
 * which no participant can forge. livekit-client gives no participant for that packet and an empty
 * sender identity; a packet from a sender it does not know yet has no participant either, but
 * names its sender.
 */
export function endNoticeReason(
  payload: Uint8Array,
  from: Sender,
  senderIdentity?: string,
): string | undefined {
  if (!isAgent(from) && !(from === undefined && senderIdentity === '')) return undefined;
  try {
    const reason = (JSON.parse(new TextDecoder().decode(payload)) as { reason?: unknown } | null)
      ?.reason;
    return typeof reason === 'string' ? reason : undefined;
  } catch {
    return undefined; // a malformed notice: the disconnect reason still says something
  }
}
