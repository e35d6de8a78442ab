import { DurableObject } from 'cloudflare:workers';
import type { AdmissionRequest, CallReport } from '../../wire-contract/index.ts';
import { errorMessage } from '../../wire-contract/index.ts';
import { configFrom, type Config } from '../config.ts';
import { ledgerNotMigrated } from '../errors.ts';
import { archiveCall, archivedPart, type ArchivedCall } from '../ledger/archive.ts';
import {
  closeCall,
  closeCalls,
  recordReport,
  markAgentRemoved,
  type CallEnd,
} from '../ledger/call-ends.ts';
import {
  callerRecord,
  callRecord,
  findCall,
  type CallRow,
  type EndSource,
} from '../ledger/calls.ts';
import { recordIssuedToken } from '../ledger/issued-tokens.ts';
import { markStarted } from '../ledger/sweeps.ts';
import { applyCallEvent, type AppliedWebhook, type CallEvent } from '../ledger/webhook-events.ts';
import { deleteRoom, liveRooms } from '../livekit/rooms.ts';
import { log } from '../log.ts';
import { withinMs } from '../time-bound.ts';
import { admitAgent, type AgentAdmission } from './agent-admission.ts';
import { watchAdmittedAgent, watchAgentArrival, type ArrivalOutcome } from './agent-arrival.ts';
import { callFromRoomMetadata } from './call-facts.ts';
import { hasCallStorage, migrateCallStorage } from './call-schema.ts';
import {
  exportCall,
  importCall,
  issuedTokens,
  takeIssuedTokens,
  takeLaterJoinBy,
} from './call-storage.ts';
import { deadlineStep, type Keep, nextWake, overdueEnd, unusedEnd } from './deadlines.ts';
import { localLedger } from './local-ledger.ts';

/** A failed step (LiveKit or D1 down) is tried again after 1 s, 2 s, 4 s … at most this long. */
export const RETRY_CAP_MS = 60_000;
/** Failed tries in a row past which the log says error: LiveKit refusing for good (a wrong key). */
const FAILURES_WORTH_AN_ERROR = 8;
const DAY_MS = 86_400_000;
/**
 * An archive write slower than this is taken for failed (the alarm writes again): the request
 * it follows, whose change the object already holds, must answer within the ledger's bound.
 */
const ARCHIVE_TIMEOUT_MS = 1_000;

/** What a cron sweep's look at one call came to. */
export type SweepOutcome = 'untracked' | 'ended' | 'not_joined' | 'started' | 'nothing_due';

/**
 * One call, by room name: its live state and its clock. Every per-call path comes here (LiveKit's
 * webhooks, the agent's admission and report, the API's end and reads, a dispatch, the
 * agent-arrival watches), and the ledger's own statements decide on the object's SQLite
 * (local-ledger.ts): one call, one place, so no order of events leaves two truths. The archive
 * (D1) has the call from `/token` (or a dispatch), which tells no object (its speed). The object
 * takes the call, the first time it hears of it, from the facts `/token` put in the room's
 * metadata, which LiveKit's webhooks carry (call-facts.ts), or else from the archive, in one
 * read (a room a dispatch created, a first word from the agent or the API). It writes the call back
 * when it ends, in one statement, and once before that for a call that outlives its tokens'
 * join-by (the open-call cap counts it by its start). Its alarm keeps its deadlines (a call whose
 * agent died is closed at its deadline plus grace; a LiveKit that fails keeps the deadline,
 * retried with backoff), retries an archive write that failed, and, once the call ended, keeps
 * its retention.
 */
export class Call extends DurableObject<Env> {
  #local: D1Database | undefined;
  #migrated = false;
  #archiving: Promise<unknown> = Promise.resolve();
  #deadlineWork: Promise<unknown> = Promise.resolve();
  #taking: Promise<CallRow | null> | undefined;

  /** The ledger's statements on this call's own SQLite. */
  get #db(): D1Database {
    return (this.#local ??= localLedger(this.ctx.storage));
  }

  /**
   * The call's row here; the first time, taken from the facts the room's metadata carries (a
   * webhook's), else from the archive, and its alarm planned. Null: no such call, and then nothing
   * is stored: a room the edge never tracked leaves no object behind.
   */
  async #load(room: string, roomMetadata?: string | null): Promise<CallRow | null> {
    if (this.#hasTables()) {
      const here = await findCall(this.#db, room);
      if (here) return here;
    }
    // One first contact at a time: a request that comes while the call is being taken (its
    // webhooks arrive side by side, and awaiting the archive or the dispatch's decryption lets
    // them in) waits for it and shares its outcome, so the call is taken, and the archive read,
    // once: the taker's failure is theirs too (a 503, and LiveKit retries), and a room the taker
    // found no call for has none for them either (a token's facts imply the archive's row).
    if (!this.#taking) {
      this.#taking = this.#take(room, roomMetadata);
      void this.#taking.finally(() => (this.#taking = undefined)).catch(() => {});
      return this.#taking;
    }
    return (await this.#taking) ? findCall(this.#db, room) : null;
  }

  async #take(room: string, roomMetadata: string | null | undefined): Promise<CallRow | null> {
    const facts = await this.#factsFrom(room, roomMetadata);
    if (facts) {
      this.#migrate();
      // `/token`'s own statements, on this call's storage: the rows the archive got from it.
      await recordIssuedToken(this.#db, { ...facts, callerKey: null, maxOpenCalls: 0 });
    } else {
      const record = await exportCall(this.env.LEDGER, room);
      if (!record) return null;
      this.#migrate();
      importCall(this.ctx.storage, record);
    }
    const call = await findCall(this.#db, room);
    if (!call) return null;
    await this.ctx.storage.put('archived', archivedPart(call));
    log(configFrom(this.env), 'info', 'call object: took the call', {
      room,
      from: facts ? 'room_metadata' : 'archive',
    });
    await this.#settle(room);
    return findCall(this.#db, room);
  }

  /**
   * A call's facts from its room's metadata, while its token can still be joined (with the
   * backstop's grace): later, the archive may hold an end the facts do not (the cron closes a
   * call never joined by then), and it is read instead.
   */
  async #factsFrom(room: string, roomMetadata: string | null | undefined) {
    const config = configFrom(this.env);
    const facts = await callFromRoomMetadata(config, room, roomMetadata);
    const graceMs = config.BACKSTOP_GRACE_SECONDS * 1000;
    return facts && Date.now() <= facts.joinBy + graceMs ? facts : null;
  }

  /** Whether this object holds a call (its tables, brought up to date). */
  #hasTables(): boolean {
    if (this.#migrated) return true;
    if (!hasCallStorage(this.ctx.storage)) return false;
    this.#migrate();
    return true;
  }

  #migrate(): void {
    if (this.#migrated) return;
    migrateCallStorage(this.ctx.storage);
    this.#migrated = true;
  }

  /** Everything this object holds, gone (retention). */
  async #forgetAll(): Promise<void> {
    await this.ctx.storage.deleteAll();
    this.#migrated = false;
  }

  /** A dispatch opened the call (or found it open): from now the object keeps its deadline. */
  async watch(room: string): Promise<void> {
    if (await this.#load(room)) await this.#settle(room);
  }

  async webhook(event: CallEvent): Promise<AppliedWebhook> {
    if (!(await this.#load(event.room, event.roomMetadata))) return { outcome: 'untracked' };
    const applied = await applyCallEvent(this.#db, event, Date.now());
    await this.#settle(event.room);
    return applied;
  }

  /** The agent job's admission; null: a room the edge never issued a token for. */
  async admit(ask: AdmissionRequest): Promise<AgentAdmission | null> {
    const call = await this.#load(ask.room);
    if (!call) return null;
    const admission = await admitAgent(this.#db, configFrom(this.env), call, ask, Date.now());
    await this.#settle(ask.room);
    return admission;
  }

  async report(
    report: CallReport,
    body: string,
    end: CallEnd,
  ): Promise<{ found: boolean; stored: boolean }> {
    if (!(await this.#load(report.room))) return { found: false, stored: false };
    const result = await recordReport(this.#db, report, body, Date.now(), end);
    await this.#settle(report.room);
    return result;
  }

  /** Records an end (closeCall's rules); whether it changed the call. */
  async end(room: string, end: CallEnd): Promise<boolean> {
    if (!(await this.#load(room))) return false;
    const recorded = await closeCall(this.#db, room, end);
    await this.#settle(room);
    return recorded;
  }

  async agentRemoved(room: string, at: number): Promise<void> {
    if (!(await this.#load(room))) return;
    await markAgentRemoved(this.#db, room, at);
    await this.#settle(room);
  }

  async row(room: string): Promise<CallRow | null> {
    return this.#load(room);
  }

  /** Everything about the call: its row, its participants, its first report. */
  async record(room: string) {
    if (!(await this.#loadWithTokens(room))) return null;
    return callRecord(this.#db, room);
  }

  /** What a caller may read: the call's row and its own participant row. */
  async callerRecord(room: string, identity: string | null) {
    if (!(await this.#loadWithTokens(room))) return null;
    return callerRecord(this.#db, room, identity);
  }

  /**
   * The call, with every token the archive recorded for it: `/token` tells no object (a token
   * often never becomes a call), so tokens issued after this object took the call are read from
   * the archive when someone reads the call (one round trip; not on any call's live path).
   */
  async #loadWithTokens(room: string): Promise<CallRow | null> {
    const call = await this.#load(room);
    if (call) takeIssuedTokens(this.ctx.storage, await issuedTokens(this.env.LEDGER, room));
    return call;
  }

  /** A person joined: until an agent does, the object watches one comes (agent-arrival.ts). */
  watchArrival(room: string, identity: string): Promise<ArrivalOutcome | undefined> {
    return this.#watch(room, (db, config) => watchAgentArrival(db, config, room, identity));
  }

  /** An admitted job: until it joins, the object watches it comes (agent-arrival.ts). */
  watchAdmitted(room: string, jobId: string): Promise<ArrivalOutcome | undefined> {
    return this.#watch(room, (db, config) => watchAdmittedAgent(db, config, room, jobId));
  }

  /** Runs an agent-arrival watch on the call's own ledger, settling whatever it changed. */
  async #watch(
    room: string,
    watch: (db: D1Database, config: Config) => Promise<ArrivalOutcome>,
  ): Promise<ArrivalOutcome | undefined> {
    if (!(await this.#load(room))) return undefined;
    try {
      return await watch(this.#db, configFrom(this.env));
    } finally {
      await this.#settle(room);
    }
  }

  /** The cron's safety net: whatever the call's deadlines owe it now, done now. */
  async sweep(room: string, now: number): Promise<SweepOutcome> {
    const call = await this.#load(room);
    if (!call) return 'untracked';
    const outcome = await this.#dueInTurn(room, now, 'cron');
    await this.#settle(room);
    return outcome;
  }

  /**
   * After a change: the archive told what it must know, and the alarm set for what is due next.
   * The change itself is already durable here, so an archive that fails (D1 down) fails nothing
   * the caller asked for: the alarm tries again with backoff until the archive has it.
   */
  async #settle(room: string): Promise<void> {
    // Retention emptied the object while this request waited: nothing is left to settle.
    if (!this.#migrated) return;
    let retryArchiveAt: number | undefined;
    let failure: unknown;
    try {
      await this.#archive(room);
      await this.#forgetFailures('archive_failures');
    } catch (err) {
      const failures = ((await this.ctx.storage.get<number>('archive_failures')) ?? 0) + 1;
      await this.ctx.storage.put('archive_failures', failures);
      retryArchiveAt = Date.now() + backoffMs(failures);
      log(
        configFrom(this.env),
        failures >= FAILURES_WORTH_AN_ERROR ? 'error' : 'warn',
        'call archive: will try again',
        { room, failures, message: errorMessage(err) },
      );
      // An archive behind the code (a deploy that skipped `migrations apply`) is the operator's
      // to fix: the caller is told so (ledger_not_migrated), as an outage would not tell them.
      if (ledgerNotMigrated(err)) failure = err;
    }
    const call = await findCall(this.#db, room);
    if (!call) return;
    // While the archive fails, the retry is what wakes the object for it, with its backoff.
    const archived =
      retryArchiveAt === undefined
        ? await this.ctx.storage.get<ArchivedCall>('archived')
        : { started_at: call.started_at };
    const wake = nextWake(call, archived, this.#oldestReportAt(), Date.now(), this.#keep());
    const at = retryArchiveAt === undefined ? wake : Math.min(wake ?? Infinity, retryArchiveAt);
    if ((await this.ctx.storage.getAlarm()) !== at) {
      if (at === undefined) await this.ctx.storage.deleteAlarm();
      else await this.ctx.storage.setAlarm(at);
    }
    if (failure) throw failure;
  }

  /**
   * Writes the call's live state to the archive when the archive needs it: once it ended (and
   * again if that end or its revivals change), and once a started call outlives its tokens'
   * join-by (the open-call cap counts it by its start from then on). One write at a time, each
   * of the state as it is when it goes.
   */
  async #archive(room: string): Promise<void> {
    const write = this.#archiving.then(async () => {
      const call = await findCall(this.#db, room);
      if (!call) return;
      const due =
        call.status === 'ended' ||
        (call.started_at !== null && call.join_by !== null && Date.now() >= call.join_by);
      if (!due) return;
      const part = archivedPart(call);
      const before = await this.ctx.storage.get<ArchivedCall>('archived');
      if (JSON.stringify(before) === JSON.stringify(part)) return;
      await withinMs(archiveCall(this.env.LEDGER, room, part), ARCHIVE_TIMEOUT_MS);
      await this.ctx.storage.put('archived', part);
    });
    this.#archiving = write.catch(() => {});
    await write;
  }

  /** A count of failed tries ends with a success (a read first: most runs had none to forget). */
  async #forgetFailures(key: 'failures' | 'archive_failures'): Promise<void> {
    if ((await this.ctx.storage.get(key)) !== undefined) await this.ctx.storage.delete(key);
  }

  #keep(): Keep {
    const config = configFrom(this.env);
    return {
      graceMs: config.BACKSTOP_GRACE_SECONDS * 1000,
      callsMs: config.RETENTION_CALL_DAYS * DAY_MS,
      reportsMs: config.RETENTION_REPORT_DAYS * DAY_MS,
    };
  }

  #oldestReportAt(): number | undefined {
    const row = this.ctx.storage.sql
      .exec<{ at: number | null }>('SELECT MIN(received_at) AS at FROM call_reports')
      .one();
    return row.at ?? undefined;
  }

  override async alarm(): Promise<void> {
    const call = this.#hasTables()
      ? await this.#db.prepare('SELECT * FROM calls LIMIT 1').first<CallRow>()
      : null;
    if (!call) {
      // An object from before it held its call kept only the room's name and a deadline alarm:
      // it takes its call from the archive now, or has nothing to keep.
      const room = await this.ctx.storage.get<string>('room');
      if (room && (await this.#load(room))) await this.ctx.storage.delete('room');
      else await this.ctx.storage.deleteAll();
      return;
    }
    const now = Date.now();
    try {
      const keep = this.#keep();
      if (call.status === 'ended') {
        // Retention: the archive's rows go with the cron's runs; the object's go at their time.
        if (now >= (call.ended_at ?? now) + keep.callsMs) return await this.#forgetAll();
        this.ctx.storage.sql.exec(
          'DELETE FROM call_reports WHERE received_at <= ?',
          now - keep.reportsMs,
        );
      } else await this.#dueInTurn(call.room, now, 'deadline');
      await this.#forgetFailures('failures');
      await this.#settle(call.room);
    } catch (err) {
      const failures = ((await this.ctx.storage.get<number>('failures')) ?? 0) + 1;
      const retryMs = backoffMs(failures);
      await this.ctx.storage.put('failures', failures);
      await this.ctx.storage.setAlarm(Date.now() + retryMs);
      log(
        configFrom(this.env),
        failures >= FAILURES_WORTH_AN_ERROR ? 'error' : 'warn',
        'call deadline: will try again',
        { room: call.room, failures, retry_in_ms: retryMs, message: errorMessage(err) },
      );
    }
  }

  /**
   * #due, one at a time: the alarm and a cron sweep may both come for an overdue call, and the
   * second, seeing the call as the first left it, does nothing (one DeleteRoom, one end).
   */
  #dueInTurn(room: string, now: number, source: EndSource): Promise<SweepOutcome> {
    const turn = this.#deadlineWork.then(async () => {
      const call = await findCall(this.#db, room);
      return call ? this.#due(call, now, source) : 'nothing_due';
    });
    this.#deadlineWork = turn.catch(() => {});
    return turn;
  }

  /** Does what the call's deadlines owe it at `now`. */
  async #due(call: CallRow, now: number, source: EndSource): Promise<SweepOutcome> {
    const config = configFrom(this.env);
    const room = call.room;
    const graceMs = config.BACKSTOP_GRACE_SECONDS * 1000;
    const step = deadlineStep(call, now, graceMs);
    switch (step.do) {
      case 'forget':
      case 'wait':
        return 'nothing_due';
      case 'end_overdue':
        // The room first: a ledger that said ended while the room lived would lie.
        await deleteRoom(config, room);
        if (await closeCall(this.#db, room, overdueEnd(now, source))) {
          log(configFrom(this.env), 'info', 'call deadline: ended an overdue call', { room });
          return 'ended';
        }
        return 'nothing_due';
      case 'close_if_unused': {
        // A later token's word to this object may have been lost: the archive has every token's
        // join-by (one read, only for calls that look unused).
        const archived = await findCall(this.env.LEDGER, room);
        if (archived?.join_by != null && archived.join_by > (call.join_by ?? 0)) {
          takeLaterJoinBy(this.ctx.storage, archived);
          return 'nothing_due';
        }
        if ((await liveRooms(config, [room])).has(room)) {
          await markStarted(this.#db, room, now);
          return 'started';
        }
        // Still unstarted and still expired: a token issued while LiveKit was asked moved it.
        const closed = await closeCalls(
          this.#db,
          [room],
          unusedEnd(now, source),
          `AND started_at IS NULL AND join_by <= ${Math.floor(now - graceMs)}`,
        );
        if (!closed.length) return 'nothing_due';
        log(configFrom(this.env), 'info', 'call deadline: closed a call never joined', { room });
        return 'not_joined';
      }
    }
  }
}

/** 1 s, 2 s, 4 s … at most RETRY_CAP_MS, after `failures` failed tries in a row. */
const backoffMs = (failures: number) => Math.min(RETRY_CAP_MS, 1_000 * 2 ** (failures - 1));

/** The call's object, by room name. */
export const callObject = (env: Env, room: string) => env.CALLS.get(env.CALLS.idFromName(room));
