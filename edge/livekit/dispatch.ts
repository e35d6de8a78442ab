import type { Config } from '../config.ts';
import { ApiError } from '../errors.ts';
import { callLiveKit, NOT_FOUND } from './call-livekit.ts';
import { agentDispatch } from './clients.ts';

/**
 * Dispatches `agentName` into an existing room unless a dispatch for it is already there, so a
 * retried request never puts a second agent in the call.
 */
export async function ensureDispatch(
  config: Config,
  room: string,
  agentName: string,
  metadata: string,
) {
  const client = agentDispatch(config);
  const existing = await callLiveKit('ListDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
    client.listDispatch(room),
  );
  const found =
    existing === NOT_FOUND ? undefined : existing.find((d) => d.agentName === agentName);
  if (found) return { dispatchId: found.id, created: false };
  const created = await callLiveKit('CreateDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
    client.createDispatch(room, agentName, { metadata }),
  );
  if (created === NOT_FOUND)
    throw new ApiError(404, 'room_not_found', `LiveKit has no room ${room}`);
  return { dispatchId: created.id, created: true };
}
