import { ServerError } from 'livekit-server-sdk';

export const NOT_FOUND = Symbol('livekit-not-found');

/**
 * LiveKit failed one server API call: it answered an error (`error`, with its HTTP status), did
 * not answer in time (`timeout`), or could not be reached (`unreachable`). The edge's error mapper
 * (errors.ts) makes it a 502 or a 503; the alarm and the watches retry or log it.
 */
export class LiveKitFailure extends Error {
  readonly kind: 'error' | 'timeout' | 'unreachable';

  /** `message` names the operation. */
  constructor(kind: LiveKitFailure['kind'], message: string) {
    super(message);
    this.name = 'LiveKitFailure';
    this.kind = kind;
  }
}

/**
 * Runs one LiveKit server API call, bounded by `timeoutMs`: 404 becomes NOT_FOUND for the caller
 * to decide; any other failure a LiveKitFailure. The SDK has its own timeout too; the race covers
 * a hung connect that never reaches it.
 */
export async function callLiveKit<T>(
  operation: string,
  timeoutMs: number,
  fn: () => Promise<T>,
): Promise<T | typeof NOT_FOUND> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DOMException('timed out', 'TimeoutError')),
      timeoutMs + 250,
    );
  });
  try {
    return await Promise.race([fn(), timeout]);
  } catch (err) {
    if (err instanceof ServerError) {
      if (err.status === 404) return NOT_FOUND;
      throw new LiveKitFailure(
        'error',
        `LiveKit ${operation} failed: ${err.status} ${err.code ?? ''}`.trim(),
      );
    }
    if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
      throw new LiveKitFailure(
        'timeout',
        `LiveKit ${operation} did not answer within ${timeoutMs} ms`,
      );
    throw new LiveKitFailure('unreachable', `LiveKit ${operation} failed: server unreachable`);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
