/**
 * The one list of reasons a call ends, used by the agent's lifecycle, the report, the ledger, logs,
 * the client-facing API and the call page. Values are stored in the ledger: add, never rename.
 * This module has no imports so the browser bundle can read the wording from it.
 */
export const END_REASON_VALUES = [
  'participant_left',
  'agent_leave',
  'agent_end_call',
  'api_end_call',
  'api_remove_agent',
  'max_duration',
  'idle_timeout',
  'drain',
  'room_deleted',
  'error',
  'not_joined',
  'agent_unavailable',
] as const;
export type EndReason = (typeof END_REASON_VALUES)[number];

export const ENDED_BY_VALUES = ['user', 'agent', 'api', 'system', 'unknown'] as const;
export type EndedBy = (typeof ENDED_BY_VALUES)[number];

/**
 * How the agent finishes once it has said goodbye: delete the room (everyone leaves), leave it
 * (only the agent goes; a no-op when the room is already gone), or do what the call's end mode says.
 */
export type Finish = 'delete_room' | 'leave' | 'by_end_mode';

/** LiveKit's DisconnectReason names (livekit_models.proto), as both SDKs spell them. */
export type LiveKitDisconnect =
  'CLIENT_INITIATED' | 'ROOM_DELETED' | 'ROOM_CLOSED' | 'PARTICIPANT_REMOVED';

export type EndReasonRow = {
  /** Who ended the call, as the report and the ledger say it. */
  endedBy: EndedBy;
  /** What the agent says before it finishes; null: no goodbye (nobody is listening, or it is too late). */
  goodbye: string | null;
  finish: Finish;
  /** The plain words a client shows the caller. */
  clientMessage: string;
  /** The agent's own room disconnect that means this reason. */
  agentDisconnect?: LiveKitDisconnect;
  /**
   * False when the one recording it only saw the room vanish and cannot name who ended it: the
   * ledger keeps such an end replaceable by a better-informed one.
   */
  authoritative: boolean;
};

export const END_REASONS: Record<EndReason, EndReasonRow> = {
  participant_left: {
    endedBy: 'user',
    goodbye: null,
    // In end_for_all mode the caller's hang-up ends the call for everyone: the room goes now, not
    // after LiveKit's departure timeout, so the caller's still-valid token cannot rejoin the
    // ended call's room (a new room for it is a revival, which the edge closes).
    finish: 'by_end_mode',
    clientMessage: 'You left the call.',
    agentDisconnect: 'ROOM_CLOSED',
    authoritative: true,
  },
  agent_leave: {
    endedBy: 'agent',
    goodbye: 'Goodbye!',
    finish: 'leave',
    clientMessage: 'The assistant left the call.',
    agentDisconnect: 'CLIENT_INITIATED',
    authoritative: true,
  },
  agent_end_call: {
    endedBy: 'agent',
    goodbye: 'Goodbye!',
    finish: 'delete_room',
    clientMessage: 'The assistant ended the call.',
    authoritative: true,
  },
  api_end_call: {
    endedBy: 'api',
    goodbye: null,
    finish: 'leave',
    clientMessage: 'The call was ended for everyone.',
    authoritative: true,
  },
  api_remove_agent: {
    endedBy: 'api',
    goodbye: null,
    finish: 'leave',
    clientMessage: 'The assistant was removed from the call.',
    agentDisconnect: 'PARTICIPANT_REMOVED',
    authoritative: true,
  },
  max_duration: {
    endedBy: 'system',
    goodbye: "We've reached the time limit for this call. Thanks for talking with me, goodbye!",
    finish: 'by_end_mode',
    clientMessage: 'The call reached its time limit.',
    authoritative: true,
  },
  idle_timeout: {
    endedBy: 'system',
    goodbye: "I haven't heard from you, so I'll end the call now. Goodbye!",
    finish: 'by_end_mode',
    clientMessage: 'The call ended because nobody was talking.',
    authoritative: true,
  },
  // The agent worker is shutting down (a deploy's drain deadline, a restart, or LiveKit ending the
  // job) and ended the call first.
  drain: {
    endedBy: 'system',
    goodbye: 'I need to end our call now for maintenance. Sorry about that, and goodbye!',
    finish: 'by_end_mode',
    clientMessage: 'The assistant had to end the call for maintenance. Please call again.',
    authoritative: true,
  },
  room_deleted: {
    endedBy: 'unknown',
    goodbye: null,
    finish: 'leave',
    clientMessage: 'The call was closed.',
    agentDisconnect: 'ROOM_DELETED',
    authoritative: false,
  },
  error: {
    endedBy: 'system',
    goodbye: null,
    // In end_for_all mode the room goes too: a caller must not wait alone with no agent.
    finish: 'by_end_mode',
    clientMessage: 'The call ended because of a problem on our side. Please call again.',
    authoritative: true,
  },
  // A token was issued and expired without anyone joining: LiveKit's starter apps fetch a token on
  // page load, so many are never used. Recorded by the edge's cron, never with a DeleteRoom, and
  // replaceable should the agent report the call after all.
  not_joined: {
    endedBy: 'system',
    goodbye: null,
    finish: 'leave',
    clientMessage: 'The call never started.',
    authoritative: false,
  },
  // The caller joined but no agent worker had room for the call before the edge's agent-wait
  // deadline (AGENT_WAIT_SECONDS), re-dispatching with backoff meanwhile. Recorded by the edge,
  // which deletes the room; no agent ever ran, so nothing else can name this end.
  agent_unavailable: {
    endedBy: 'system',
    goodbye: null,
    finish: 'leave',
    clientMessage: 'No assistant was available. Please try again in a moment.',
    authoritative: true,
  },
};

export function isEndReason(value: unknown): value is EndReason {
  return typeof value === 'string' && Object.hasOwn(END_REASONS, value);
}

/** The reason the agent's own disconnect means, if it means one. */
export function endReasonForAgentDisconnect(name: string | undefined): EndReason | undefined {
  return END_REASON_VALUES.find((r) => END_REASONS[r].agentDisconnect === name);
}

/**
 * How the agent tells clients why it ended: it sets this attribute on its own participant before
 * it leaves or deletes the room (value: an EndReason), and sends the same on the data topic below.
 * The protocol (payload, whom clients believe, which wins) is docs/clients.md, "The end notice".
 */
export const END_REASON_ATTRIBUTE = 'call.end_reason';
export const CALL_END_TOPIC = 'call.end';
