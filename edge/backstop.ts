import { configFrom } from './config.ts';
import { closeCall, overdueCalls } from './ledger/calls.ts';
import { deleteRoom } from './livekit/rooms.ts';
import { log } from './log.ts';

/**
 * The max-duration backstop (cron): deletes rooms whose deadline plus grace has passed while the
 * ledger still has them open, even when the agent is dead. A LiveKit failure leaves that call open
 * for the next run; one failure does not stop the others.
 */
export async function runBackstop(
  env: Env,
  now = Date.now(),
): Promise<{ ended: string[]; failed: string[] }> {
  const config = configFrom(env);
  const ended: string[] = [];
  const failed: string[] = [];
  for (const { room } of await overdueCalls(
    env.LEDGER,
    now,
    config.BACKSTOP_GRACE_SECONDS * 1000,
  )) {
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
  if (ended.length || failed.length) log(undefined, 'info', 'backstop run', { ended, failed });
  return { ended, failed };
}
