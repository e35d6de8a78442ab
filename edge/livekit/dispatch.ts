import type { AgentDispatch } from 'livekit-server-sdk';
import type { Config } from '../config.ts';
import { callLiveKit, NOT_FOUND } from './call-livekit.ts';
import { agentDispatch } from './clients.ts';

type Job = NonNullable<AgentDispatch['state']>['jobs'][number];

/** A dispatch made (`created`) or found, or `no_room`: LiveKit has no such room. */
export type EnsuredDispatch =
  { outcome: 'dispatched'; dispatchId: string; created: boolean } | { outcome: 'no_room' };

/**
 * Dispatches `agentName` into an existing room unless a dispatch for it is already there, so a
 * retried request never puts a second agent in the call.
 */
export async function ensureDispatch(
  config: Config,
  room: string,
  agentName: string,
  metadata: string,
): Promise<EnsuredDispatch> {
  const client = agentDispatch(config);
  const existing = await callLiveKit('ListDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
    client.listDispatch(room),
  );
  const found =
    existing === NOT_FOUND ? undefined : existing.find((d) => d.agentName === agentName);
  if (found) return { outcome: 'dispatched', dispatchId: found.id, created: false };
  const created = await callLiveKit('CreateDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
    client.createDispatch(room, agentName, { metadata }),
  );
  if (created === NOT_FOUND) return { outcome: 'no_room' };
  return { outcome: 'dispatched', dispatchId: created.id, created: true };
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
 * call to one agent if both arrive. A job started before `startedAfter` (epoch ms) does not count:
 * LiveKit lists every job it assigned as running for as long as the room lives (agents-js never
 * reports a job's end, and v1.13.5 does not sweep jobs that never joined), so one that died on its
 * way would otherwise stand for an agent for ever.
 */
export async function dispatchAgain(
  config: Config,
  room: string,
  agentName: string,
  startedAfter = -Infinity,
): Promise<'in_progress' | 'redispatched' | 'no_room'> {
  const client = agentDispatch(config);
  const listed = await callLiveKit('ListDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
    client.listDispatch(room),
  );
  if (listed === NOT_FOUND) return 'no_room';
  const ours = listed.filter((d) => d.agentName === agentName);
  // A listed job without a state (or a start time) has not reported one yet: it is on its way.
  const mayStillCome = (j: Job) => {
    const startedAt = Number((j.state?.startedAt ?? 0n) / 1_000_000n);
    const status = j.state?.status ?? JOB_PENDING;
    return [JOB_PENDING, JOB_RUNNING].includes(status) && (!startedAt || startedAt >= startedAfter);
  };
  const alive = ours.some((d) => (d.state?.jobs ?? []).some(mayStillCome));
  if (alive) return 'in_progress';
  const created = await callLiveKit('CreateDispatch', config.LIVEKIT_TIMEOUT_MS, () =>
    client.createDispatch(room, agentName, { metadata: ours[0]?.metadata ?? '' }),
  );
  return created === NOT_FOUND ? 'no_room' : 'redispatched';
}
