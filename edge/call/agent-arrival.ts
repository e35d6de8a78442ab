import type { Config } from '../config.ts';
import { closeCall } from '../ledger/call-ends.ts';
import { findCall, firstJoinedCaller } from '../ledger/calls.ts';
import { ADMITTED_AGENT_GRACE_MS, admittedJob, callerWaitingSince } from '../ledger/admissions.ts';
import { dispatchAgain } from '../livekit/dispatch.ts';
import { agentPresent, announceEnd, deleteRoom } from '../livekit/rooms.ts';
import { log } from '../log.ts';
import { errorMessage } from '../../wire-contract/index.ts';

export type ArrivalOutcome =
  | 'agent_joined'
  | 'agent_coming'
  | 'agent_unavailable'
  | 'call_over'
  | 'not_the_first_caller'
  /** At the deadline LiveKit or the ledger could not say whether an agent came: no end. */
  | 'left_to_backstop';

/**
 * LiveKit lists a dispatch's job seconds after the job starts: an empty list younger than this is
 * not yet a dropped dispatch.
 */
const DISPATCH_SETTLE_MS = 5_000;
/** Once an admitted job is taken for lost, how long the edge waits for the next one to come. */
export const REPLACEMENT_WAIT_MS = 10_000;
/**
 * How long an admitted job's own watch runs: its grace to join, then the wait for a replacement.
 * The watch runs in the call's object, asked from the admission's waitUntil, which holds it for
 * up to 30 s after the answer: 25 s leaves a few for the end it may write (should LiveKit be slow
 * to delete the room then, the object's alarm still closes the call at its deadline).
 */
export const ADMISSION_WATCH_MS = ADMITTED_AGENT_GRACE_MS + REPLACEMENT_WAIT_MS;
/**
 * No lost job is replaced once the caller has waited this long since joining: a worker whose every
 * job dies on the way (a crash loop) ends the call as `agent_unavailable` instead of holding a
 * caller (a SIP caller never hangs up on their own) for ever.
 */
export const MAX_AGENT_WAIT_MS = 60_000;
/**
 * At the deadline, a look that failed (LiveKit or the ledger) is made once more this long after;
 * if that fails too the call is not ended on a guess (an agent may be in it): the cron's backstop
 * closes it at its deadline, or LiveKit's own webhooks once the room empties.
 */
const LATE_LOOK_RETRY_MS = 1_000;

export type Clock = { now(): number; sleep(ms: number): Promise<void> };
/**
 * The watches' time: the real clock. The workerd tests replace its methods (vi.spyOn) so that a
 * watch started by a request (in the call's object) runs its seconds of waiting at once.
 */
export const watchClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/**
 * From the moment a caller joins until the call's agent does. Self-hosted LiveKit drops a dispatch
 * that finds no worker with room (all at their call cap, or none registered) and never retries
 * it, which would leave the caller alone in a silent room. So the edge looks again with backoff
 * (1, 2, 4, 4… s); a dispatch that has brought no job DISPATCH_SETTLE_MS after it was made is
 * made again; and at AGENT_WAIT_SECONDS the call ends as `agent_unavailable`, the room told why,
 * unless a job the edge admitted is on its way. Once the edge admits a job, that job's own watch
 * (watchAdmittedAgent, started by the admission) takes the call over. The retry lives here, not
 * in the page, because every client (mobile SDKs, SIP) gets it and the edge holds what a
 * re-dispatch needs. It runs in the call's object (on the call's own ledger), asked from the
 * webhook's waitUntil, so the wait stays under the Workers' 30 s. Only the first caller's join
 * watches, so one call has one watcher.
 */
export async function watchAgentArrival(
  db: D1Database,
  config: Config,
  room: string,
  identity: string,
  clock: Clock = watchClock,
): Promise<ArrivalOutcome> {
  if ((await firstJoinedCaller(db, room)) !== identity) return 'not_the_first_caller';
  return untilAgentJoins(db, config, room, clock, {
    deadline: clock.now() + config.AGENT_WAIT_SECONDS * 1000,
    note: `no agent within ${config.AGENT_WAIT_SECONDS} s`,
  });
}

/**
 * From the moment the edge admits an agent job until its agent joins. A job can die between its
 * admission and joining the room (a crash, a kill for memory, its host gone), and LiveKit neither
 * notices nor dispatches again. So the job gets ADMITTED_AGENT_GRACE_MS to join; past it the edge
 * takes it for lost, dispatches again at once and admits the next job in its place (whose own
 * watch then takes over), and if none has come REPLACEMENT_WAIT_MS later, or the caller has
 * waited MAX_AGENT_WAIT_MS already, the call ends as `agent_unavailable`. Runs in the call's
 * object, asked from the admission's waitUntil, so each admitted job is watched whenever it came,
 * also past the first watch. A late
 * job that renews its place as it joins (`joining`) gets a new watch, and this one stops.
 */
export async function watchAdmittedAgent(
  db: D1Database,
  config: Config,
  room: string,
  jobId: string,
  clock: Clock = watchClock,
): Promise<ArrivalOutcome> {
  const admitted = await admittedJob(db, room);
  if (admitted?.jobId !== jobId) return 'agent_coming';
  return untilAgentJoins(db, config, room, clock, {
    deadline: admitted.at + ADMISSION_WATCH_MS,
    job: jobId,
    admittedAt: admitted.at,
    note: `the admitted agent never joined, and no other came within ${REPLACEMENT_WAIT_MS / 1000} s`,
  });
}

type Watch = {
  /** Past this (epoch ms), with no agent and none admitted on its way, the call ends. */
  deadline: number;
  /** The admitted job this watch is for, and when it was admitted; none for a caller's watch. */
  job?: string;
  admittedAt?: number;
  /** Why the call ended, as the ledger's note says it. */
  note: string;
};

async function untilAgentJoins(
  db: D1Database,
  config: Config,
  room: string,
  clock: Clock,
  watch: Watch,
): Promise<ArrivalOutcome> {
  let dispatchedAt = clock.now(); // the token's dispatch ran when the caller's join made the room
  let delay = 1_000;
  let lost: string | undefined;
  let lateLookFailed = false;
  for (let attempt = 1; ; attempt++) {
    await clock.sleep(Math.max(0, Math.min(delay, watch.deadline - clock.now())));
    delay = Math.min(delay * 2, 4_000);
    const now = clock.now();
    const late = now >= watch.deadline;
    let end: { note: string } | undefined;
    try {
      const call = await findCall(db, room);
      if (call?.status !== 'open') return 'call_over';
      const present = await agentPresent(config, room);
      if (present === undefined) return 'call_over';
      if (present) return 'agent_joined';
      const admitted = await admittedJob(db, room);
      // Another admission lately (another job's, or this job's own, renewed as it joins late):
      // its own watch runs, and takes the call from here.
      const another = admitted?.jobId !== watch.job || admitted?.at !== watch.admittedAt;
      if (admitted && another && now - admitted.at < ADMISSION_WATCH_MS) return 'agent_coming';
      if (admitted && now - admitted.at < ADMITTED_AGENT_GRACE_MS) continue; // ours, on its way
      if (admitted && lost !== admitted.jobId) {
        // Admitted, not in the room past its grace: it died on the way. Another, at once.
        lost = admitted.jobId;
        dispatchedAt = -Infinity;
        log(config, 'warn', 'the admitted agent did not join in time: dispatching again', {
          room,
          job_id: admitted.jobId,
          waited_ms: now - admitted.at,
        });
        const since = watch.job && (await callerWaitingSince(db, room));
        if (since && now - since >= MAX_AGENT_WAIT_MS)
          end = { note: `agents kept failing to join for ${MAX_AGENT_WAIT_MS / 1000} s` };
      }
      if (!end && late) end = watch;
      if (!end) {
        if (now - dispatchedAt < DISPATCH_SETTLE_MS) continue;
        // A job started longer ago than an admitted one may take to join is not coming either.
        const outcome = await dispatchAgain(
          config,
          room,
          call.agent_name,
          now - ADMITTED_AGENT_GRACE_MS,
        );
        if (outcome === 'redispatched') {
          dispatchedAt = now;
          log(config, 'warn', 'no agent took the call yet: dispatched again', { room, attempt });
        }
        continue;
      }
    } catch (err) {
      // LiveKit or the ledger failing now is one missed look. Before the deadline the next look
      // comes anyway; at it, the call ends only on a look that found no agent and none admitted
      // on its way, never on a failure, which would delete a room an agent may be talking in.
      log(config, 'warn', 'agent arrival check failed', {
        room,
        message: errorMessage(err),
      });
      if (!late) continue;
      if (lateLookFailed) {
        log(config, 'warn', 'no answer at the deadline: the call is left to the backstop', {
          room,
        });
        return 'left_to_backstop';
      }
      lateLookFailed = true;
      await clock.sleep(LATE_LOOK_RETRY_MS);
      continue;
    }
    // Decided on a look that succeeded: no agent, none on its way.
    return await endWithoutAgent(db, config, room, now, end);
  }
}

async function endWithoutAgent(
  db: D1Database,
  config: Config,
  room: string,
  at: number,
  { note }: { note: string },
): Promise<ArrivalOutcome> {
  log(config, 'warn', 'no agent came: ending the call', { room, note });
  // The ledger first: a client that reads why its room went finds the reason there.
  await closeCall(db, room, {
    reason: 'agent_unavailable',
    endedBy: 'system',
    source: 'api',
    at,
    note,
    strong: true,
  });
  // The reason next, while the caller is there to hear it; the room goes either way.
  await announceEnd(config, room, 'agent_unavailable').catch(() => {});
  await deleteRoom(config, room);
  return 'agent_unavailable';
}
