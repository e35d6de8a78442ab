import * as z from 'zod';
import { END_MODES, openJson, sealJson } from '../../wire-contract/index.ts';
import type { Config } from '../config.ts';
import type { IssuedCall } from '../ledger/issued-tokens.ts';

/**
 * What `/token` wrote to the archive for a new call, carried to the call's object by LiveKit:
 * sealed into the token's room configuration, LiveKit makes it the room's metadata, and every
 * webhook about the room carries it back. The object's first contact then needs no read of the
 * archive (`/token` tells no object: most tokens never become calls). Sealed, because the token is
 * a JWT its holder reads and the room's metadata reaches every participant; under a key of its
 * own purpose, so nothing sealed for the agent opens as a call's facts.
 */
const KEY_INFO = 'livekit-voice-calls/call-facts/v1/aes-256-gcm';

const CallFacts = z
  .object({
    identity: z.string(),
    agentName: z.string(),
    endMode: z.enum(END_MODES),
    maxDurationSeconds: z.number().int().positive(),
    now: z.number().int(),
    joinBy: z.number().int(),
    deadlineAt: z.number().int(),
  })
  .strict() satisfies z.ZodType<Omit<IssuedCall, 'room'>>;

/** The call `/token` records, sealed for its room (the room's name is not repeated inside). */
export function sealCallFacts(config: Config, { room, ...facts }: IssuedCall): Promise<string> {
  return sealJson(KEY_INFO, facts, room, config.LIVEKIT_API_SECRET);
}

/**
 * The facts sealed for this room, or null for anything else: a room without them (created by a
 * dispatch, or by another backend), another room's, another secret's, or tampered with.
 */
export async function openCallFacts(
  config: Config,
  room: string,
  raw: string | null | undefined,
): Promise<IssuedCall | null> {
  if (!raw) return null;
  const secrets = [config.LIVEKIT_API_SECRET, config.LIVEKIT_PREVIOUS_API_SECRET].filter(
    (s): s is string => !!s,
  );
  const opened = await openJson(KEY_INFO, raw, room, secrets);
  if (!opened.ok) return null;
  const parsed = CallFacts.safeParse(opened.value);
  return parsed.success ? { room, ...parsed.data } : null;
}
