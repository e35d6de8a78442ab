import * as z from 'zod';
import { DispatchMetadata, openDispatchMetadata } from '../../wire-contract/index.ts';
import type { Config } from '../config.ts';
import type { IssuedCall } from '../ledger/issued-tokens.ts';

/**
 * What `/token` wrote to the archive for a new call, carried to the call's object by LiveKit: in
 * the token's room configuration, LiveKit makes it the room's metadata when the join creates the
 * room, and every webhook about the room carries it back. The object's first contact then needs
 * no read of the archive (`/token` tells no object: most tokens never become calls).
 *
 * Nothing new is sealed and nothing new is shown: the facts are the agent's sealed dispatch, the
 * very string the token already carries for the agent (its caller, settings and issue time,
 * sealed for this room), beside the agent's name and the token's expiry, which the token's claims
 * show anyway. One more seal per token cost `/token` 15–20 % of its throughput in bench:edge, and
 * plain settings would show the caller what the backend chose for the agent. A dispatch too long
 * to repeat (a backend's long instructions) sends no facts: its call's object reads the archive.
 */
const MAX_DISPATCH_CHARS = 2048;

const RoomMetadata = z
  .object({
    call: z
      .object({
        v: z.literal(1),
        agent_name: z.string(),
        join_by: z.number().int(),
        dispatch: z.string().max(MAX_DISPATCH_CHARS),
      })
      .strict(),
  })
  .strict();

/**
 * The room's metadata a token from `/token` gives the room its join creates (`sealedDispatch` is
 * the agent's dispatch metadata, as sealed for this token); empty when the dispatch is too long.
 */
export function callFactsMetadata(call: IssuedCall, sealedDispatch: string): string {
  if (sealedDispatch.length > MAX_DISPATCH_CHARS) return '';
  return JSON.stringify({
    call: { v: 1, agent_name: call.agentName, join_by: call.joinBy, dispatch: sealedDispatch },
  } satisfies z.infer<typeof RoomMetadata>);
}

/**
 * The call a room's metadata describes, or null for anything else: a room `/token` did not make
 * (no metadata, or an app's own), or a dispatch that does not open for this room with the edge's
 * secrets (another room's, another key's, tampered).
 */
export async function callFromRoomMetadata(
  config: Config,
  room: string,
  raw: string | null | undefined,
): Promise<IssuedCall | null> {
  if (!raw) return null;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  const parsed = RoomMetadata.safeParse(json);
  if (!parsed.success) return null;
  const { agent_name, join_by, dispatch } = parsed.data.call;
  const opened = await openDispatchMetadata(
    dispatch,
    room,
    config.liveKitKeyPairs.map((pair) => pair.apiSecret),
  );
  const settings = opened.ok ? DispatchMetadata.safeParse(opened.metadata) : undefined;
  if (!settings?.success) return null;
  const s = settings.data;
  return {
    room,
    identity: s.caller_identity,
    agentName: agent_name,
    endMode: s.end_mode,
    maxDurationSeconds: s.max_duration_seconds,
    now: Date.parse(s.issued_at),
    joinBy: join_by,
    // As /token sets it: the latest the call can start, plus its longest duration.
    deadlineAt: join_by + s.max_duration_seconds * 1000,
  };
}
