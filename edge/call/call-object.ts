import { DurableObject } from 'cloudflare:workers';
import { errorMessage } from '../../wire-contract/index.ts';
import { configFrom } from '../config.ts';
import { closeCall, closeCalls } from '../ledger/call-ends.ts';
import { findCall } from '../ledger/calls.ts';
import { markStarted } from '../ledger/sweeps.ts';
import { deleteRoom, liveRooms } from '../livekit/rooms.ts';
import { log } from '../log.ts';
import { deadlineStep, overdueEnd, unusedEnd } from './deadlines.ts';

/** A failed step (LiveKit or D1 down) is tried again after 1 s, 2 s, 4 s … at most this long. */
export const RETRY_CAP_MS = 60_000;
/** Failed tries in a row past which the log says error: LiveKit refusing for good (a wrong key). */
const FAILURES_WORTH_AN_ERROR = 8;

/**
 * One call, by room name: for now its clock. Whatever makes a call live (the room's real start,
 * a dispatch into an existing room) asks it to `watch`, and its alarm then works the ledger's
 * row: a call whose agent died is closed at its deadline plus grace, not at the next minute's
 * cron, and a LiveKit that fails keeps the deadline (the alarm retries with backoff). The room's
 * end tells it to `forget`. The ledger in D1 stays the call's record; the cron sweeps what no
 * object watches.
 */
export class Call extends DurableObject<Env> {
  /** Be woken by `at` at the latest (epoch ms); an earlier wake-up stands. */
  async watch(room: string, at: number): Promise<void> {
    if ((await this.ctx.storage.get<string>('room')) !== room)
      await this.ctx.storage.put('room', room);
    await this.#wakeBy(at);
  }

  /**
   * The call has ended: nothing to wake for. Spares the ledger the read the alarm would make at
   * the deadline to find that out; should this never arrive, that read still finds it.
   * (`deleteAll` deletes the alarm too, from compatibility date 2026-02-24.)
   */
  async forget(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }

  /**
   * Sets the alarm to `at` unless an earlier one is set. While an alarm runs, `getAlarm` answers
   * only one a `watch` set meanwhile (the running one is no longer set), which then stands if
   * earlier: a deadline moved closer during a run is never pushed back.
   */
  async #wakeBy(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || at < current) await this.ctx.storage.setAlarm(at);
  }

  override async alarm(): Promise<void> {
    const room = await this.ctx.storage.get<string>('room');
    if (!room) return;
    try {
      const next = await this.#work(room);
      if (next === undefined) await this.ctx.storage.deleteAll();
      else {
        await this.ctx.storage.delete('failures');
        await this.#wakeBy(next);
      }
    } catch (err) {
      const failures = ((await this.ctx.storage.get<number>('failures')) ?? 0) + 1;
      const retryMs = Math.min(RETRY_CAP_MS, 1_000 * 2 ** (failures - 1));
      await this.ctx.storage.put('failures', failures);
      await this.#wakeBy(Date.now() + retryMs);
      log(
        undefined,
        failures >= FAILURES_WORTH_AN_ERROR ? 'error' : 'warn',
        'call deadline: will try again',
        {
          room,
          failures,
          retry_in_ms: retryMs,
          message: errorMessage(err),
        },
      );
    }
  }

  /** Does what the call's deadlines owe it now; returns when to look again (none: never). */
  async #work(room: string): Promise<number | undefined> {
    const config = configFrom(this.env);
    const db = this.env.LEDGER;
    const graceMs = config.BACKSTOP_GRACE_SECONDS * 1000;
    const now = Date.now();
    const step = deadlineStep(await findCall(db, room), now, graceMs);
    switch (step.do) {
      case 'forget':
        return undefined;
      case 'wait':
        return step.until;
      case 'end_overdue':
        // The room first: a ledger that said ended while the room lived would lie.
        await deleteRoom(config, room);
        if (await closeCall(db, room, overdueEnd(now, 'deadline')))
          log(undefined, 'info', 'call deadline: ended an overdue call', { room });
        return undefined;
      case 'close_if_unused': {
        if ((await liveRooms(config, [room])).has(room)) await markStarted(db, room, now);
        else if (
          (await closeCalls(db, [room], unusedEnd(now, 'deadline'), 'AND started_at IS NULL'))
            .length
        )
          log(undefined, 'info', 'call deadline: closed a call never joined', { room });
        // Started after all (LiveKit had the room, or a webhook raced the close): its live deadline.
        const after = deadlineStep(await findCall(db, room), now, graceMs);
        return after.do === 'wait' ? after.until : after.do === 'forget' ? undefined : now;
      }
    }
  }
}

const callObject = (env: Env, room: string) => env.CALLS.get(env.CALLS.idFromName(room));

/** Asks the call's object to be woken by `at` (epoch ms). */
export async function watchCall(env: Env, room: string, at: number): Promise<void> {
  await callObject(env, room).watch(room, at);
}

/** Tells the call's object the call has ended. */
export async function forgetCall(env: Env, room: string): Promise<void> {
  await callObject(env, room).forget();
}
