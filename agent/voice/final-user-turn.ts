import type { voice } from '@livekit/agents';

/** What this module touches of agents-js's AgentActivity (internal; pinned by its contract test). */
type Activity = {
  stt?: unknown;
  commitUserTurn(options?: { audioDetached?: boolean; throwIfNotReady?: boolean }): void;
};
/** Activities already changed: the call is wired once, but cheap to guard. */
const changed = new WeakSet<object>();

/**
 * Skips the user turn agents-js commits when a session without an STT closes: it can never hold
 * words, and it made every such call log a warning.
 *
 * agents-js 1.9's `AgentSession` close drains the running activity (speech scheduling pauses),
 * then calls `activity.commitUserTurn({ audioDetached: true })` so words the user said but whose
 * turn had not ended still reach the history. Only an STT puts words there. Without one (a
 * text-only call, a realtime model) the commit always runs an end of turn with an empty
 * transcript, which the paused activity logs as `skipping user input, speech scheduling is
 * paused` (warn) on every call. With an STT agents-js skips an empty turn itself, and a turn
 * with words is still committed (and warned about: real input was dropped), so such a session is
 * left alone. Needs the session started (`session._activity` is its running activity); the
 * internals used are pinned by test/agent/final-user-turn.test.ts.
 */
export function skipEmptyFinalUserTurn(session: voice.AgentSession): void {
  const activity = (session as unknown as { _activity?: Activity })._activity;
  if (!activity || activity.stt || changed.has(activity)) return;
  changed.add(activity);
  const commit = activity.commitUserTurn.bind(activity);
  activity.commitUserTurn = (options = {}) => {
    if (!options.audioDetached) commit(options);
  };
}
