import { DataPacket_Kind } from 'livekit-server-sdk';
import { CALL_END_TOPIC, type EndReason } from '../../wire-contract/index.ts';
import type { Config } from '../config.ts';
import { callLiveKit, NOT_FOUND } from './call-livekit.ts';
import { roomService } from './clients.ts';

/** Deletes the room (everyone is disconnected). Returns false when LiveKit no longer has it. */
export async function deleteRoom(config: Config, room: string): Promise<boolean> {
  const result = await callLiveKit('DeleteRoom', config.LIVEKIT_TIMEOUT_MS, () =>
    roomService(config).deleteRoom(room),
  );
  return result !== NOT_FOUND;
}

export const AGENT_KIND = 4; // livekit.ParticipantInfo.Kind.AGENT

/** Removes every agent participant and leaves the others in the room. Returns the removed identities. */
export async function removeAgents(config: Config, room: string): Promise<string[]> {
  const client = roomService(config);
  const participants = await callLiveKit('ListParticipants', config.LIVEKIT_TIMEOUT_MS, () =>
    client.listParticipants(room),
  );
  if (participants === NOT_FOUND) return [];
  const agents = participants.filter((p) => Number(p.kind) === AGENT_KIND).map((p) => p.identity);
  const removed: string[] = [];
  for (const identity of agents) {
    const r = await callLiveKit('RemoveParticipant', config.LIVEKIT_TIMEOUT_MS, () =>
      client.removeParticipant(room, identity),
    );
    if (r !== NOT_FOUND) removed.push(identity);
  }
  return removed;
}

/** Which of `rooms` LiveKit has now (one ListRooms call). */
export async function liveRooms(config: Config, rooms: string[]): Promise<Set<string>> {
  const found = await callLiveKit('ListRooms', config.LIVEKIT_TIMEOUT_MS, () =>
    roomService(config).listRooms(rooms),
  );
  return new Set(found === NOT_FOUND ? [] : found.map((r) => r.name));
}

export async function roomExists(config: Config, room: string): Promise<boolean> {
  return (await liveRooms(config, [room])).has(room);
}

/**
 * Tells everyone in the room why the call ends, on the same data topic the agent uses, for an end
 * the edge decides while no agent is there to say it. Sent by the server, with no participant:
 * clients that can tell it from a sender they do not know yet take it as they take the agent's;
 * the others only as agent_unavailable before any agent came (docs/clients.md, the end notice).
 */
export async function announceEnd(config: Config, room: string, reason: EndReason): Promise<void> {
  const payload = new TextEncoder().encode(JSON.stringify({ reason }));
  await callLiveKit('SendData', config.LIVEKIT_TIMEOUT_MS, () =>
    roomService(config).sendData(room, payload, DataPacket_Kind.RELIABLE, {
      topic: CALL_END_TOPIC,
    }),
  );
}

/** Whether an agent is in the room now; undefined when LiveKit has no such room. */
export async function agentPresent(config: Config, room: string): Promise<boolean | undefined> {
  const participants = await callLiveKit('ListParticipants', config.LIVEKIT_TIMEOUT_MS, () =>
    roomService(config).listParticipants(room),
  );
  if (participants === NOT_FOUND) return undefined;
  return participants.some((p) => Number(p.kind) === AGENT_KIND);
}
