import * as z from 'zod';
import { END_MODES } from '../../wire-contract/index.ts';
import type { IssuedCall } from '../ledger/issued-tokens.ts';

/**
 * What `/token` wrote to the archive for a new call, carried to the call's object by LiveKit: in
 * the token's room configuration, LiveKit makes it the room's metadata when the join creates the
 * room, and every webhook about the room carries it back. The object's first contact then needs
 * no read of the archive (`/token` tells no object: most tokens never become calls).
 *
 * Plain JSON, not sealed: sealing cost `/token` 15–20 % of its throughput in bench:edge (one more
 * AES-GCM per token), and nothing here is private from the room (its caller's identity, its agent,
 * its end mode and longest duration, when its token expires; the backend's instructions stay in
 * the agent's sealed dispatch). It is trusted as far as the webhook that carries it: a room's
 * metadata is set only by a token or API call signed with the LiveKit key pair, the same key the
 * webhook's signature proves (the edge never grants `roomAdmin`).
 */
const CallFacts = z
  .object({
    v: z.literal(1),
    room: z.string(),
    identity: z.string(),
    agent_name: z.string(),
    end_mode: z.enum(END_MODES),
    max_duration_seconds: z.number().int().positive(),
    created_at: z.number().int(),
    join_by: z.number().int(),
    deadline_at: z.number().int(),
  })
  .strict();
const RoomMetadata = z.object({ call: CallFacts }).strict();

/** The room's metadata a token from `/token` gives the room its join creates. */
export function callFactsMetadata(call: IssuedCall): string {
  return JSON.stringify({
    call: {
      v: 1,
      room: call.room,
      identity: call.identity,
      agent_name: call.agentName,
      end_mode: call.endMode,
      max_duration_seconds: call.maxDurationSeconds,
      created_at: call.now,
      join_by: call.joinBy,
      deadline_at: call.deadlineAt,
    },
  } satisfies z.infer<typeof RoomMetadata>);
}

/**
 * The call a room's metadata describes, or null for anything else: a room `/token` did not make
 * (no metadata, or an app's own), or facts about another room.
 */
export function callFromRoomMetadata(
  room: string,
  raw: string | null | undefined,
): IssuedCall | null {
  if (!raw) return null;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  const parsed = RoomMetadata.safeParse(json);
  if (!parsed.success || parsed.data.call.room !== room) return null;
  const f = parsed.data.call;
  return {
    room,
    identity: f.identity,
    agentName: f.agent_name,
    endMode: f.end_mode,
    maxDurationSeconds: f.max_duration_seconds,
    now: f.created_at,
    joinBy: f.join_by,
    deadlineAt: f.deadline_at,
  };
}
