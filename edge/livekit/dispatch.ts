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

/** JobStatus values (livekit_agent.proto) of a job that may still bring its agent. */
const JOB_PENDING = 0;
const JOB_RUNNING = 1;

/**
 * Self-hosted LiveKit drops a dispatch that found no worker with room and never retries it: the
 * dispatch stays listed with no job. If `agentName`'s dispatch has no job that may still bring the
 * agent, it is replaced by a new one with the same metadata (sealed for this room, so still
 * valid), which LiveKit offers to the workers again. Returns what was found or done.
 */
export async function redispatchIfDropped(
  config: Config,
  room: string,
  agentName: string,
): Promise<'in_progress' | 'redispatched' | 'no_room'> {
  const client = agentDispatch(config);
  const listed = await callLiveKit('ListDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
    client.listDispatch(room),
  );
  if (listed === NOT_FOUND) return 'no_room';
  const ours = listed.filter((d) => d.agentName === agentName);
  const alive = ours.some((d) =>
    (d.state?.jobs ?? []).some((j) => [JOB_PENDING, JOB_RUNNING].includes(j.state?.status ?? -1)),
  );
  if (alive) return 'in_progress';
  const metadata = ours[0]?.metadata ?? '';
  for (const stale of ours)
    await callLiveKit('DeleteDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
      client.deleteDispatch(stale.id, room),
    );
  const created = await callLiveKit('CreateDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
    client.createDispatch(room, agentName, { metadata }),
  );
  return created === NOT_FOUND ? 'no_room' : 'redispatched';
}
