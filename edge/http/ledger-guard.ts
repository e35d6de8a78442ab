import { ApiError, throwIfLedgerNotMigrated } from '../errors.ts';
import { LiveKitFailure } from '../livekit/call-livekit.ts';
import { log } from '../log.ts';
import { withinMs } from '../time-bound.ts';
import { errorMessage } from '../../wire-contract/index.ts';

/** How long one ledger step (a D1 round trip, a call object's answer) may take before the request gives up. */
export const LEDGER_TIMEOUT_MS = 3_000;

/**
 * Runs one ledger operation bounded in time. D1 failing (a binding error, an overloaded database,
 * a hung round trip) becomes a 503 with Retry-After instead of a 500, and whatever depended on the
 * write (a token for a call the ledger does not hold) is never handed out.
 */
export async function withLedger<T>(
  what: string,
  fn: () => Promise<T>,
  /** For a call's object whose step also waits on LiveKit: that bound on top of the ledger's. */
  { alsoMs = 0 } = {},
): Promise<T> {
  try {
    return await withinMs(fn(), LEDGER_TIMEOUT_MS + alsoMs);
  } catch (err) {
    if (err instanceof ApiError || err instanceof LiveKitFailure) throw err; // not the ledger's
    throwIfLedgerNotMigrated(err); // schema behind the code: name the command, not an outage
    log(undefined, 'warn', 'ledger failed', {
      what,
      message: errorMessage(err).slice(0, 500),
    });
    throw new ApiError(
      503,
      'ledger_unavailable',
      `the call ledger did not answer (${what}); try again`,
      {
        'Retry-After': '5',
      },
    );
  }
}
