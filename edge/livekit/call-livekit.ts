import { ServerError } from 'livekit-server-sdk';
import { ApiError } from '../errors.ts';

export const NOT_FOUND = Symbol('livekit-not-found');

/**
 * Runs one LiveKit server API call, bounded by `timeoutMs`, and maps its failures: 404 becomes
 * NOT_FOUND for the caller to decide; a LiveKit error is a 502; a timeout or unreachable server a 503.
 * The SDK has its own timeout too; the race covers a hung connect that never reaches it.
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
      throw new ApiError(
        502,
        'livekit_error',
        `LiveKit ${operation} failed: ${err.status} ${err.code ?? ''}`.trim(),
      );
    }
    if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
      throw new ApiError(
        503,
        'livekit_timeout',
        `LiveKit ${operation} did not answer within ${timeoutMs} ms`,
        { 'Retry-After': '5' },
      );
    }
    throw new ApiError(
      503,
      'livekit_unreachable',
      `LiveKit ${operation} failed: server unreachable`,
      { 'Retry-After': '5' },
    );
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
