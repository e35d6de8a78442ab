import type { Config } from './config.ts';
import { closeCall, findCall, firstJoinedCaller } from './ledger/calls.ts';
import { agentAdmitted } from './ledger/admissions.ts';
import { dispatchAgain } from './livekit/dispatch.ts';
import { agentPresent, announceEnd, deleteRoom } from './livekit/rooms.ts';
import { log } from './log.ts';

export type ArrivalOutcome =
  'agent_joined' | 'agent_coming' | 'agent_unavailable' | 'call_over' | 'not_the_first_caller';

/**
 * LiveKit lists a dispatch's job seconds after the job starts: an empty list younger than this is
 * not yet a dropped dispatch.
 */
const DISPATCH_SETTLE_MS = 5_000;

export type Clock = { now(): number; sleep(ms: number): Promise<void> };
const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/**
 * From the moment a caller joins until the call's agent does. Self-hosted LiveKit drops a dispatch
 * that finds no worker with room (all at their call cap, or none registered) and never retries
 * it, which would leave the caller alone in a silent room. So the edge looks again with backoff
 * (1, 2, 4, 4… s); a dispatch that has brought no job DISPATCH_SETTLE_MS after it was made is
 * made again; and at AGENT_WAIT_SECONDS, unless an agent job is on its way (admitted by the edge,
 * or listed by LiveKit), the call ends as `agent_unavailable`, the room told why. The retry lives
 * here, not in the page, because every client (mobile SDKs, SIP) gets it and the edge holds what a
 * re-dispatch needs. It runs in the webhook's waitUntil, so the wait stays under the Workers' 30 s.
 * Only the first caller's join watches, so one call has one watcher.
 */
export async function watchAgentArrival(
  db: D1Database,
  config: Config,
  room: string,
  identity: string,
  clock: Clock = realClock,
): Promise<ArrivalOutcome> {
  if ((await firstJoinedCaller(db, room)) !== identity) return 'not_the_first_caller';
  const deadline = clock.now() + config.AGENT_WAIT_SECONDS * 1000;
  let dispatchedAt = clock.now(); // the token's dispatch ran when the caller's join made the room
  let delay = 1_000;
  for (let attempt = 1; ; attempt++) {
    await clock.sleep(Math.max(0, Math.min(delay, deadline - clock.now())));
    delay = Math.min(delay * 2, 4_000);
    const call = await findCall(db, room);
    if (call?.status !== 'open') return 'call_over';
    const late = clock.now() >= deadline;
    try {
      const present = await agentPresent(config, room);
      if (present === undefined) return 'call_over';
      if (present) return 'agent_joined';
      if (await agentAdmitted(db, room)) {
        if (late) return 'agent_coming';
        continue;
      }
      if (!late && clock.now() - dispatchedAt < DISPATCH_SETTLE_MS) continue;
      const outcome = await dispatchAgain(config, room, call.agent_name);
      if (outcome === 'in_progress' && late) return 'agent_coming';
      if (late) return await endWithoutAgent(db, config, room, clock.now());
      if (outcome === 'redispatched') {
        dispatchedAt = clock.now();
        log(undefined, 'warn', 'no agent took the call yet: dispatched again', { room, attempt });
      }
    } catch (err) {
      // LiveKit failing now is one missed look; the deadline still holds.
      log(undefined, 'warn', 'agent arrival check failed', {
        room,
        message: err instanceof Error ? err.message : String(err),
      });
      if (late) return await endWithoutAgent(db, config, room, clock.now());
    }
  }
}

async function endWithoutAgent(
  db: D1Database,
  config: Config,
  room: string,
  at: number,
): Promise<ArrivalOutcome> {
  log(undefined, 'warn', 'no agent came within AGENT_WAIT_SECONDS: ending the call', { room });
  // The ledger first: a client that reads why its room went finds the reason there.
  await closeCall(db, room, {
    reason: 'agent_unavailable',
    endedBy: 'system',
    source: 'api',
    at,
    note: `no agent within ${config.AGENT_WAIT_SECONDS} s`,
    strong: true,
  });
  // The reason next, while the caller is there to hear it; the room goes either way.
  await announceEnd(config, room, 'agent_unavailable').catch(() => {});
  await deleteRoom(config, room);
  return 'agent_unavailable';
}
