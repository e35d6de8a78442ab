import { END_REASONS, isEndReason } from '../../wire-contract/end-reasons.ts';
import { errorMessage } from '../../wire-contract/error-message.ts';

/**
 * What the call page says to a person, in plain words. End reasons come from the contract's one
 * table; only what LiveKit alone can tell (a disconnect with no reason from the agent) and the
 * page's own failures are worded here.
 */

/** What the page knows when a call is over. */
export type CallOutcome = {
  /** The agent's `call.end` notice or `call.end_reason` attribute, if one arrived. */
  reason?: string;
  /** LiveKit's DisconnectReason name, if the page was disconnected. */
  disconnect?: string;
  /** What this person did: hung up, or ended the call for everyone. */
  byMe?: 'hang_up' | 'end_for_all';
  /** The assistant left the room without saying why (it crashed or lost its connection). */
  agentVanished?: boolean;
};

const DISCONNECTS: Record<string, string> = {
  ROOM_DELETED: END_REASONS.api_end_call.clientMessage,
  ROOM_CLOSED: END_REASONS.room_deleted.clientMessage,
  CLIENT_INITIATED: END_REASONS.participant_left.clientMessage,
  PARTICIPANT_REMOVED: 'You were removed from the call.',
  DUPLICATE_IDENTITY: 'You joined this call from another tab or device, so this one was closed.',
  SERVER_SHUTDOWN: 'The call service restarted. Please call again.',
};
const CONNECTION_LOST = 'Connection lost. Check your network and call again.';
const CALL_ENDED = 'The call ended.';

export function endedInWords(o: CallOutcome): string {
  if (o.byMe === 'hang_up') return END_REASONS.participant_left.clientMessage;
  if (o.byMe === 'end_for_all') return END_REASONS.api_end_call.clientMessage;
  if (isEndReason(o.reason)) return END_REASONS[o.reason].clientMessage;
  // A reason newer than this page (the contract adds reasons, never renames them).
  if (o.reason) return CALL_ENDED;
  if (o.agentVanished) return END_REASONS.error.clientMessage;
  return (o.disconnect && DISCONNECTS[o.disconnect]) || CONNECTION_LOST;
}

/** An error answer from the edge: `{ error: { code, message, retry_after_seconds? } }`. */
export type EdgeError = {
  status: number;
  code?: string;
  message?: string;
  retryAfterSeconds?: number;
};

/**
 * livekit-client's TokenSource.endpoint throws `Error generating token from endpoint <url>:
 * received <status> / <body>`; the status and the edge's JSON body are read back from it.
 */
export function edgeErrorFromTokenSource(err: unknown): EdgeError | undefined {
  const match = /received (\d{3}) \/ ([\s\S]*)$/.exec(errorMessage(err));
  if (!match) return undefined;
  return { status: Number(match[1]), ...errorFields(match[2]!) };
}

export function errorFields(body: string): Omit<EdgeError, 'status'> {
  try {
    const { error } = JSON.parse(body) as {
      error?: { code?: string; message?: string; retry_after_seconds?: number };
    };
    return {
      code: error?.code,
      message: error?.message,
      retryAfterSeconds: error?.retry_after_seconds,
    };
  } catch {
    return {};
  }
}

export function tokenRefusedInWords(e: EdgeError | undefined): string {
  if (!e) return 'Could not reach the call service. Check your connection and try again.';
  // Codes whose status alone would say the wrong thing: a 503 here is not the call service down,
  // a 429 here is not calling too fast.
  if (e.code === 'identity_provider_unreachable')
    return 'We could not check your sign-in right now. Please try again in a moment.';
  if (e.code === 'too_many_open_calls')
    return 'You already have as many calls open as you are allowed. End one, or wait for one to finish, then call again.';
  switch (e.status) {
    case 401:
      return 'You are not signed in, or your sign-in has expired. Sign in again, then call.';
    case 403:
      return `You are not allowed to start this call${e.message ? ` (${e.message})` : ''}.`;
    case 429: {
      const wait = e.retryAfterSeconds ?? 60;
      return `Too many calls started just now. Please wait ${wait} second${wait === 1 ? '' : 's'} and try again.`;
    }
    default:
      return e.status >= 500
        ? 'The call service is not available right now. Please try again in a moment.'
        : `The call could not start: ${e.message ?? `error ${e.status}`}.`;
  }
}

/**
 * How long Call stays off after a refused token: the rate limit's wait, which no click can shorten.
 * Not the open-call cap's: ending a call elsewhere frees a place at once.
 */
export function callAgainAfterSeconds(e: EdgeError | undefined): number | undefined {
  if (e?.status !== 429 || e.code === 'too_many_open_calls') return undefined;
  return e.retryAfterSeconds ?? 60;
}

export const callAgainIn = (seconds: number) => `You can call again in ${seconds} s.`;

export function microphoneFailureInWords(err: unknown): string {
  const name = err instanceof Error ? err.name : '';
  if (name === 'NotAllowedError' || name === 'SecurityError')
    return 'Microphone access was refused. Allow the microphone for this site in your browser, then call again.';
  if (name === 'NotFoundError' || name === 'OverconstrainedError')
    return 'No microphone was found. Connect one, then call again.';
  if (name === 'NotReadableError')
    return 'Your microphone is in use by another app. Close it, then call again.';
  return 'The microphone could not be started. Check it, then call again.';
}

export const NO_ASSISTANT = 'No assistant is available right now. Please try again in a moment.';
export const LIVEKIT_UNREACHABLE =
  'Could not connect to the call. Check your connection and try again.';

/** End for everyone refused, or the edge not reached (`e` undefined). */
export function endForAllRefusedInWords(e: EdgeError | undefined): string {
  e ??= { status: 0, message: 'the call service could not be reached' };
  if (e.status === 401 || e.status === 403)
    return 'You are not allowed to end this call for everyone.';
  return `The call could not be ended for everyone: ${e.message ?? `error ${e.status}`}. Try again, or hang up.`;
}

const DEVICE_NOUN = { audioinput: 'microphone', audiooutput: 'speaker' } as const;
type DeviceKind = keyof typeof DEVICE_NOUN;
/** A device's name as said, or nothing: a device may have none (some browsers, some drivers). */
const called = (label: string | undefined) => (label ? ` “${label}”` : '');
/** What the call uses instead: a named device, or the system's default when none is named. */
const using = (label: string | undefined) => (label ? `“${label}”` : 'the default one');

/** The device chosen last time is not there now; the call uses another. */
export function deviceMissingInWords(kind: DeviceKind, chosen: string, instead?: string): string {
  const noun = DEVICE_NOUN[kind];
  const which = chosen ? `Your ${noun}${called(chosen)}` : `The ${noun} you chose`;
  return `${which} is not connected: using ${using(instead)}.`;
}

/** The device in use went away during the call; the call goes on with another. */
export function deviceLostInWords(kind: DeviceKind, lost: string, instead?: string): string {
  return `The ${DEVICE_NOUN[kind]}${called(lost)} was disconnected: now using ${using(instead)}.`;
}

/** The device in use went away, and the one the call should move to would not start. */
export function deviceLostNoFallbackInWords(
  kind: DeviceKind,
  lost: string,
  instead?: string,
): string {
  const noun = DEVICE_NOUN[kind];
  return `The ${noun}${called(lost)} was disconnected, and ${using(instead)} could not be used: choose another ${noun}.`;
}

/** A device the person chose would not start; the call keeps the one it had. */
export function deviceSwitchFailedInWords(kind: DeviceKind, label: string): string {
  return `Could not switch to the ${DEVICE_NOUN[kind]}${called(label)}; the call goes on with the one before.`;
}
