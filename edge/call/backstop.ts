import { configFrom } from '../config.ts';
import { closeCalls } from '../ledger/call-ends.ts';
import { claimForSweep, markStartedMany, pruneLedger, releaseClaims } from '../ledger/sweeps.ts';
import { liveRooms } from '../livekit/rooms.ts';
import { log } from '../log.ts';
import { errorMessage } from '../../wire-contract/index.ts';
import { callObject, type SweepOutcome } from './call-object.ts';
import { unusedEnd } from './deadlines.ts';

/**
 * What one cron run may spend. Cloudflare gives a cron invocation 1,000 subrequests (each call
 * object asked is one) and 1,000 D1 queries (paid plan), 30 s of CPU and up to 15 min of wall
 * time; a run starts every minute.
 */
export const BACKSTOP_BUDGET = {
  /** Live overdue calls claimed per run: one call object's sweep each, 16 at a time. */
  liveCalls: 400,
  sweepConcurrency: 16,
  /** Unused tokens claimed per run, checked with LiveKit `roomsPerListRooms` at a time. */
  unusedCalls: 5_000,
  roomsPerListRooms: 100,
  listConcurrency: 4,
  /** No new LiveKit request or sweep is started after this long; what is left goes back for the next run. */
  wallMs: 40_000,
  /** A claim outlives any run (wall budget plus one LiveKit timeout), so runs never overlap on a call. */
  claimMs: 120_000,
  /** Retention: rows deleted per kind per round trip, and round trips per run at most. */
  pruneBatch: 1_000,
  pruneRounds: 10,
};

export type BackstopResult = { ended: string[]; failed: string[]; notJoined: string[] };

/**
 * The cron: the safety net behind each call's own alarm (call-object.ts), the closer of tokens
 * never used, and retention. In order of what matters most:
 * 1. Calls the archive shows live past their deadline (plus grace), oldest first: each one's
 *    object is asked to do what is due (an object whose alarm failed, or a call open in the
 *    archive only, from before the objects held calls, which its object then takes from there).
 * 2. Tokens never used: a call whose room never started by the time its last token expired (plus
 *    grace) closes as `not_joined` in the archive (never `max_duration`, and no DeleteRoom; no
 *    object ever heard of it), unless LiveKit has the room after all (its start was not seen: it
 *    is marked started and its object takes it on).
 * 3. Retention: data older than RETENTION_*_DAYS, in bounded batches (each object deletes its
 *    own at its own time).
 * Every call a run works on is claimed first, so overlapping runs never process one twice; a
 * failure gives that call back for the next run and does not stop the others.
 */
export async function runBackstop(
  env: Env,
  now = Date.now(),
  budget = BACKSTOP_BUDGET,
): Promise<BackstopResult> {
  const config = configFrom(env);
  const db = env.LEDGER;
  const started = Date.now();
  const inTime = () => Date.now() - started < budget.wallMs;
  const graceMs = config.BACKSTOP_GRACE_SECONDS * 1000;
  const claimUntil = now + budget.claimMs;
  const result: BackstopResult = { ended: [], failed: [], notJoined: [] };
  const giveBack: string[] = [];

  /** Asks the call's object to do what is due; undefined when that failed (the call is given back). */
  const sweep = async (room: string): Promise<SweepOutcome | undefined> => {
    try {
      return await callObject(env, room).sweep(room, now);
    } catch (err) {
      result.failed.push(room);
      log(undefined, 'warn', 'backstop could not sweep call', {
        room,
        message: errorMessage(err),
      });
      return undefined;
    }
  };

  const overdue = await claimForSweep(
    db,
    'live_overdue',
    now - graceMs,
    now,
    claimUntil,
    budget.liveCalls,
  );
  await inParallel(overdue, budget.sweepConcurrency, async (room) => {
    if (!inTime()) return void giveBack.push(room);
    const outcome = await sweep(room);
    if (outcome === 'ended') result.ended.push(room);
    else if (outcome !== undefined) giveBack.push(room); // nothing due after all
  });

  const unused = await claimForSweep(
    db,
    'unused',
    now - graceMs,
    now,
    claimUntil,
    budget.unusedCalls,
  );
  const notJoined = unusedEnd(now, 'cron');
  await inParallel(
    chunks(unused, budget.roomsPerListRooms),
    budget.listConcurrency,
    async (rooms) => {
      if (!inTime()) return void giveBack.push(...rooms);
      let live: Set<string>;
      try {
        live = await liveRooms(config, rooms);
      } catch (err) {
        result.failed.push(...rooms);
        log(undefined, 'warn', 'backstop could not check unused tokens', {
          rooms: rooms.length,
          message: errorMessage(err),
        });
        return;
      }
      // Started after all: the archive says so, and each one's object takes it on (its deadline).
      await markStartedMany(db, [...live], now);
      for (const room of live) await sweep(room);
      // Still unstarted: a webhook or report may have started or ended it since the claim.
      const closed = await closeCalls(
        db,
        rooms.filter((r) => !live.has(r)),
        notJoined,
        'AND started_at IS NULL',
      );
      result.notJoined.push(...closed);
    },
  );
  await releaseClaims(db, [...result.failed, ...giveBack]);

  const pruned = { calls: 0, reports: 0, webhookEvents: 0 };
  const day = 86_400_000;
  for (let round = 0; round < budget.pruneRounds && inTime(); round++) {
    const p = await pruneLedger(
      db,
      now,
      {
        callsMs: config.RETENTION_CALL_DAYS * day,
        reportsMs: config.RETENTION_REPORT_DAYS * day,
        webhookEventsMs: config.RETENTION_WEBHOOK_EVENT_DAYS * day,
      },
      budget.pruneBatch,
    );
    pruned.calls += p.calls;
    pruned.reports += p.reports;
    pruned.webhookEvents += p.webhookEvents;
    if (Math.max(p.calls, p.reports, p.webhookEvents) < budget.pruneBatch) break;
  }

  if (result.ended.length || result.failed.length || result.notJoined.length || giveBack.length)
    log(undefined, 'info', 'backstop run', {
      ended: result.ended.length > 50 ? result.ended.length : result.ended,
      failed: result.failed.length > 50 ? result.failed.length : result.failed,
      not_joined: result.notJoined.length > 50 ? result.notJoined.length : result.notJoined,
      left_for_next_run: giveBack.length,
    });
  if (pruned.calls || pruned.reports || pruned.webhookEvents)
    log(undefined, 'info', 'retention', { deleted: pruned });
  return result;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
