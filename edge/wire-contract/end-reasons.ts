/**
 * The one list of reasons a call ends. Used by the agent's lifecycle, the report, the ledger,
 * logs and the client-facing API. Values are stored in the ledger: add, never rename.
 */
export const END_REASONS = {
  /** The user (the linked participant) hung up. */
  participant_left: { endedBy: 'user', sayGoodbye: false },
  /** The agent left on its own; the others stay in the room. */
  agent_leave: { endedBy: 'agent', sayGoodbye: true },
  /** The agent ended the call for everyone (the room was deleted). */
  agent_end_call: { endedBy: 'agent', sayGoodbye: true },
  /** A backend or participant called the edge's end-call endpoint with mode end_for_all. */
  api_end_call: { endedBy: 'api', sayGoodbye: false },
  /** The edge's end-call endpoint removed only the agent (mode remove_agent). */
  api_remove_agent: { endedBy: 'api', sayGoodbye: false },
  /** The maximum call duration was reached (agent timer or edge backstop). */
  max_duration: { endedBy: 'system', sayGoodbye: true },
  /** The user stayed silent through the idle ladder. */
  idle_timeout: { endedBy: 'system', sayGoodbye: true },
  /** The agent worker was shutting down (deploy) and its drain deadline came. */
  drain: { endedBy: 'system', sayGoodbye: true },
  /** The room was deleted or closed by someone the agent cannot name. */
  room_deleted: { endedBy: 'unknown', sayGoodbye: false },
  /** Something failed: the agent crashed, or vanished without a report. */
  error: { endedBy: 'system', sayGoodbye: false },
} as const satisfies Record<string, { endedBy: EndedBy; sayGoodbye: boolean }>;

export type EndedBy = 'user' | 'agent' | 'api' | 'system' | 'unknown';
export type EndReason = keyof typeof END_REASONS;
export const END_REASON_VALUES = Object.keys(END_REASONS) as [EndReason, ...EndReason[]];

export function endedByFor(reason: EndReason): EndedBy {
  return END_REASONS[reason].endedBy;
}

/**
 * How the agent tells clients why it ended: it sets this attribute on its own participant before
 * it leaves or deletes the room (value: an EndReason), and sends the same on the data topic below.
 */
export const END_REASON_ATTRIBUTE = 'call.end_reason';
export const CALL_END_TOPIC = 'call.end';
