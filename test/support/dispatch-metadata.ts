import { sealDispatchMetadata } from '../../wire-contract/index.ts';
import { DEV_SECRET } from './livekit-server.ts';

/**
 * Dispatch metadata for a token a test mints itself, sealed as the edge seals it (the agent
 * ignores plain metadata): the caller, the server's limits, the end mode.
 */
export function sealedDispatchFor(
  room: string,
  callerIdentity: string,
  { maxDurationSeconds = 1800, endMode = 'end_for_all' as const } = {},
): Promise<string> {
  return sealDispatchMetadata(
    {
      caller_identity: callerIdentity,
      issued_at: new Date().toISOString(),
      max_duration_seconds: maxDurationSeconds,
      end_mode: endMode,
    },
    room,
    DEV_SECRET,
  );
}
