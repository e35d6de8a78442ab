import { configFrom } from './config.ts';
import { closeCall, markStarted, overdueCalls, unjoinedCalls } from './ledger/calls.ts';
import { deleteRoom, liveRooms } from './livekit/rooms.ts';
import { log } from './log.ts';

/**
 * The cron. First, tokens never used: a call whose room never started by the time its last token
 * expired (plus grace) closes as `not_joined`, unless LiveKit has the room after all (its start
 * was not seen: then it is marked started). Then the max-duration backstop: deletes rooms whose
 * deadline plus grace has passed while the ledger still has them open, even when the agent is
 * dead. A LiveKit failure leaves that call open for the next run; one failure does not stop the
 * others.
 */
export async function runBackstop(
  env: Env,
  now = Date.now(),
): Promise<{ ended: string[]; failed: string[]; notJoined: string[] }> {
  const config = configFrom(env);
  const ended: string[] = [];
  const failed: string[] = [];
  const notJoined: string[] = [];
  const graceMs = config.BACKSTOP_GRACE_SECONDS * 1000;
  const unjoined = (await unjoinedCalls(env.LEDGER, now, graceMs)).map((c) => c.room);
  if (unjoined.length) {
    try {
      const live = await liveRooms(config, unjoined);
      for (const room of unjoined) {
        if (live.has(room)) await markStarted(env.LEDGER, room, now);
        else if (
          await closeCall(env.LEDGER, room, {
            reason: 'not_joined',
            endedBy: 'system',
            source: 'cron',
            at: now,
            note: 'token expired unused',
            strong: false,
          })
        )
          notJoined.push(room);
      }
    } catch (err) {
      failed.push(...unjoined);
      log(undefined, 'warn', 'backstop could not check unused tokens', {
        message: err instanceof Error ? err.message : String(err),
      });
    }
  }
  for (const { room } of await overdueCalls(env.LEDGER, now, graceMs)) {
    try {
      await deleteRoom(config, room);
      await closeCall(env.LEDGER, room, {
        reason: 'max_duration',
        endedBy: 'system',
        source: 'cron',
        at: now,
        note: 'edge backstop',
        strong: true,
      });
      ended.push(room);
    } catch (err) {
      failed.push(room);
      log(undefined, 'warn', 'backstop could not end call', {
        room,
        message: err instanceof Error ? err.message : String(err),
      });
    }
  }
  if (ended.length || failed.length || notJoined.length)
    log(undefined, 'info', 'backstop run', { ended, failed, not_joined: notJoined });
  return { ended, failed, notJoined };
}
