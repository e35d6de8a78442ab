import { describe, expect, it } from 'vitest';
import {
  callAgainAfterSeconds,
  deviceLostInWords,
  deviceLostNoFallbackInWords,
  deviceMissingInWords,
  deviceSwitchFailedInWords,
  edgeErrorFromTokenSource,
  endedInWords,
  microphoneFailureInWords,
  tokenRefusedInWords,
} from '../../edge/web/call-messages.ts';
import { END_REASONS, END_REASON_VALUES } from '../../wire-contract/end-reasons.ts';

describe('what the call page says when a call ends', () => {
  it.each(END_REASON_VALUES)('uses the contract table for the agent reason %s', (reason) => {
    expect(endedInWords({ reason, disconnect: 'ROOM_DELETED' })).toBe(
      END_REASONS[reason].clientMessage,
    );
  });

  it.each([
    ['ROOM_DELETED', 'The call was ended for everyone.'],
    ['CLIENT_INITIATED', 'You left the call.'],
    [
      'DUPLICATE_IDENTITY',
      'You joined this call from another tab or device, so this one was closed.',
    ],
    ['SIGNAL_CLOSE', 'Connection lost. Check your network and call again.'],
    [undefined, 'Connection lost. Check your network and call again.'],
  ])('words LiveKit disconnect %s when the agent sent no reason', (disconnect, words) => {
    expect(endedInWords({ disconnect })).toBe(words);
  });

  it('says what the person did before anything else', () => {
    expect(endedInWords({ byMe: 'hang_up', reason: 'agent_end_call' })).toBe('You left the call.');
    expect(endedInWords({ byMe: 'end_for_all', disconnect: 'ROOM_DELETED' })).toBe(
      'The call was ended for everyone.',
    );
  });

  it('names an assistant that vanished without a reason as a problem on our side', () => {
    expect(endedInWords({ agentVanished: true, disconnect: 'CLIENT_INITIATED' })).toBe(
      END_REASONS.error.clientMessage,
    );
  });

  it('says the call ended for a reason newer than the page, not a disconnect it did not mean', () => {
    expect(endedInWords({ reason: 'some_future_reason', disconnect: 'CLIENT_INITIATED' })).toBe(
      'The call ended.',
    );
  });

  it('never says a bare "disconnected"', () => {
    for (const disconnect of ['UNKNOWN_REASON', 'JOIN_FAILURE', 'MEDIA_FAILURE', 'STATE_MISMATCH'])
      expect(endedInWords({ disconnect })).not.toMatch(/^disconnected\.?$/i);
  });
});

describe('what the call page says when the token is refused', () => {
  const fromTokenSource = (status: number, body: unknown) =>
    edgeErrorFromTokenSource(
      new Error(
        `Error generating token from endpoint https://edge/token: received ${status} / ${JSON.stringify(body)}`,
      ),
    );

  it('reads the status and the edge error out of TokenSource.endpoint’s error', () => {
    expect(
      fromTokenSource(429, {
        error: { code: 'rate_limited', message: 'x', retry_after_seconds: 42 },
      }),
    ).toEqual({
      status: 429,
      code: 'rate_limited',
      message: 'x',
      retryAfterSeconds: 42,
    });
  });

  it('tells a rate-limited caller how long to wait', () => {
    const e = fromTokenSource(429, {
      error: { code: 'rate_limited', message: 'x', retry_after_seconds: 42 },
    });
    expect(tokenRefusedInWords(e)).toBe(
      'Too many calls started just now. Please wait 42 seconds and try again.',
    );
  });

  it.each([
    [401, /sign in again/i],
    [403, /not allowed/i],
    [503, /not available right now/i],
  ])('words a %i so the person knows what to do', (status, words) => {
    expect(
      tokenRefusedInWords(fromTokenSource(status, { error: { code: 'x', message: 'y' } })),
    ).toMatch(words);
  });

  it('words an identity provider it could not reach as a wait, not an expired sign-in', () => {
    const words = tokenRefusedInWords(
      fromTokenSource(503, {
        error: {
          code: 'identity_provider_unreachable',
          message: 'could not fetch the identity provider keys',
          retry_after_seconds: 5,
        },
      }),
    );
    expect(words).toBe('We could not check your sign-in right now. Please try again in a moment.');
    expect(words).not.toMatch(/expired|sign in again/i);
  });

  it('tells a caller with the most calls open to end one or wait, not that they called too fast', () => {
    const words = tokenRefusedInWords(
      fromTokenSource(429, {
        error: { code: 'too_many_open_calls', message: 'too many open calls for this caller' },
      }),
    );
    expect(words).toBe(
      'You already have as many calls open as you are allowed. End one, or wait for one to finish, then call again.',
    );
    expect(words).not.toMatch(/just now|seconds/);
  });

  it('words a network failure (no status) as unreachable', () => {
    expect(tokenRefusedInWords(edgeErrorFromTokenSource(new TypeError('Failed to fetch')))).toMatch(
      /could not reach/i,
    );
  });
});

describe('what the call page says when the microphone fails', () => {
  it.each([
    ['NotAllowedError', /refused/],
    ['NotFoundError', /No microphone was found/],
    ['NotReadableError', /in use/],
  ])('%s', (name, words) => {
    expect(microphoneFailureInWords(Object.assign(new Error('x'), { name }))).toMatch(words);
  });
});

describe('what the call page says about devices', () => {
  it('names the devices it knows the names of', () => {
    expect(deviceMissingInWords('audioinput', 'USB Mic', 'Built-in')).toBe(
      'Your microphone “USB Mic” is not connected: using “Built-in”.',
    );
    expect(deviceLostInWords('audiooutput', 'Headset', 'Speakers')).toBe(
      'The speaker “Headset” was disconnected: now using “Speakers”.',
    );
    expect(deviceLostNoFallbackInWords('audioinput', 'USB Mic', 'Built-in')).toBe(
      'The microphone “USB Mic” was disconnected, and “Built-in” could not be used: choose another microphone.',
    );
    expect(deviceSwitchFailedInWords('audioinput', 'USB Mic')).toBe(
      'Could not switch to the microphone “USB Mic”; the call goes on with the one before.',
    );
  });

  it('never calls a device without a name "the default one": only the fallback is the default', () => {
    expect(deviceMissingInWords('audioinput', '', undefined)).toBe(
      'The microphone you chose is not connected: using the default one.',
    );
    expect(deviceLostInWords('audioinput', '', 'Built-in')).toBe(
      'The microphone was disconnected: now using “Built-in”.',
    );
    expect(deviceSwitchFailedInWords('audiooutput', '')).toBe(
      'Could not switch to the speaker; the call goes on with the one before.',
    );
  });
});

describe('how long Call stays off after a refused token', () => {
  it('the rate limit: its Retry-After, or a minute when the edge did not say', () => {
    expect(
      callAgainAfterSeconds({ status: 429, code: 'rate_limited', retryAfterSeconds: 42 }),
    ).toBe(42);
    expect(callAgainAfterSeconds({ status: 429 })).toBe(60);
  });

  it('not at all for the open-call cap (ending a call elsewhere frees a place) or anything else', () => {
    const cap = { status: 429, code: 'too_many_open_calls', retryAfterSeconds: 600 };
    expect(callAgainAfterSeconds(cap)).toBeUndefined();
    expect(callAgainAfterSeconds({ status: 401 })).toBeUndefined();
    expect(callAgainAfterSeconds(undefined)).toBeUndefined();
  });
});
