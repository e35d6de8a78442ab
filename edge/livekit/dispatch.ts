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
 * Self-hosted LiveKit drops a dispatch that found no worker with room and never retries it. If
 * LiveKit lists no job for `agentName` that may still bring the agent, this adds a new dispatch
 * with the same metadata (sealed for this room, so still valid), which LiveKit offers to the
 * workers again. The old one stays: LiveKit lists a job seconds after it starts, so an empty list
 * may hide a slow job, which deleting the dispatch would kill; the edge's admission keeps the
 * call to one agent if both arrive.
 */
export async function dispatchAgain(
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
  // A listed job without a state has not reported one yet: it is on its way.
  const alive = ours.some((d) =>
    (d.state?.jobs ?? []).some((j) =>
      [JOB_PENDING, JOB_RUNNING].includes(j.state?.status ?? JOB_PENDING),
    ),
  );
  if (alive) return 'in_progress';
  const created = await callLiveKit('CreateDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
    client.createDispatch(room, agentName, { metadata: ours[0]?.metadata ?? '' }),
  );
  return created === NOT_FOUND ? 'no_room' : 'redispatched';
}
