import type { Config } from '../config.ts';
import {
  sealDispatchMetadata,
  type DispatchMetadata,
  type DispatchOverrides,
} from '../../wire-contract/index.ts';

/**
 * The agent to dispatch: the requested one, else the configured default, and whether the
 * allow-list has it (a request may name only agents it lists).
 */
export function chooseAgent(
  config: Config,
  requested: string | undefined,
): { agentName: string; allowed: boolean } {
  const agentName = requested || config.AGENT_NAME;
  return { agentName, allowed: config.AGENT_ALLOWED_NAMES.includes(agentName) };
}

/**
 * The dispatch metadata the agent receives: a backend's overrides, the caller, and the server's
 * limits (a requested max duration never exceeds MAX_CALL_DURATION_SECONDS).
 */
export function dispatchMetadata(
  config: Config,
  overrides: DispatchOverrides | undefined,
  callerIdentity: string,
  now: number,
): DispatchMetadata {
  return {
    ...overrides,
    caller_identity: callerIdentity,
    issued_at: new Date(now).toISOString(),
    max_duration_seconds: Math.min(
      overrides?.max_duration_seconds ?? config.MAX_CALL_DURATION_SECONDS,
      config.MAX_CALL_DURATION_SECONDS,
    ),
    end_mode: overrides?.end_mode ?? config.AGENT_END_MODE,
  };
}

/**
 * The dispatch metadata as it leaves the edge, in a token or a dispatch request: sealed for the
 * agent in this room, because a participant token is a JWT its holder can read.
 *
 * While a key rotation runs (a previous pair is set), it is sealed with the previous secret: the
 * one every agent Machine can open, those not yet redeployed (old pair only) and those already on
 * the new pair (which keep the old secret as LIVEKIT_PREVIOUS_API_SECRET). Once the edge drops
 * the previous pair it seals with the new one (docs/operations.md, rotating the key pair).
 */
export function sealedForAgent(
  config: Config,
  metadata: DispatchMetadata,
  room: string,
): Promise<string> {
  return sealDispatchMetadata(
    metadata,
    room,
    config.LIVEKIT_PREVIOUS_API_SECRET ?? config.LIVEKIT_API_SECRET,
  );
}
