import { postReport, type PostOutcome } from './delivery.ts';
import { errno, parseKept, SCHEDULE_HORIZON_MS, type ReportOutbox } from './outbox-store.ts';
import { errorMessage } from '../../wire-contract/index.ts';
import type { LogFn } from '../log.ts';

/**
 * The worker's drain of the report outbox (the files: outbox-store.ts). Each pass claims a due
 * file, posts it, and deletes it on 2xx (201 accepted, 200 duplicate: both mean the edge has it;
 * the edge is idempotent on call id) or on a final refusal (logged), or puts it back with one more
 * attempt and a later `nextAt` (exponential backoff).
 */

export type DrainOptions = {
  edgeUrl: string;
  apiKey: string;
  apiSecret: string;
  /** First retry delay; doubles per attempt up to `maxBackoffMs`. */
  retryMs: number;
  maxBackoffMs?: number;
  log?: LogFn;
  fetchImpl?: typeof fetch;
  /**
   * Every file the worker holds is due now, whatever its backoff: the worker is shutting down
   * (a deploy, or the autoscaler stopping its Machine), and what it does not deliver now waits for
   * this Machine's next start.
   */
  dueOrNot?: boolean;
  /** Told what each of the loop's passes did (the worker's /metrics). */
  onPass?: (result: DrainResult) => void;
};

export type DrainResult = {
  delivered: number;
  dropped: number;
  kept: number;
  returned: number;
  recovered: number;
  quarantined: number;
};

/** The delay before attempt `attempts + 1`: exponential, capped, ±20 % jitter. */
export function backoffMs(attempts: number, retryMs: number, maxBackoffMs: number): number {
  const base = Math.min(retryMs * 2 ** Math.max(0, attempts - 1), maxBackoffMs);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * One pass of the worker over the outbox: repairs it, enforces the bounds, then posts every due
 * file, oldest first. The first failure that is not final ends the pass (the edge is down, or
 * refuses what it should take: one probe per pass, not one per file); once one lands, files the
 * worker already holds (one attempt or more) go too, due or not (the edge is back). A job's
 * write-ahead file (no attempt yet) is never posted before its `nextAt`: the job may still be
 * delivering it.
 */
export async function drainOutbox(outbox: ReportOutbox, o: DrainOptions): Promise<DrainResult> {
  const log = o.log ?? (() => {});
  const maxBackoffMs = Math.min(
    o.maxBackoffMs ?? Math.min(3600_000, 64 * o.retryMs),
    SCHEDULE_HORIZON_MS,
  );
  const repaired = await outbox.repair();
  const result: DrainResult = {
    delivered: 0,
    dropped: (await outbox.enforceBounds()).length,
    kept: 0,
    returned: repaired.returned,
    recovered: repaired.recovered,
    quarantined: repaired.quarantined,
  };
  let edgeUp = false;
  const tried = new Set<string>();
  for (;;) {
    const now = outbox.now();
    const next = outbox
      .list()
      .filter(
        (f) => !tried.has(f.key) && (f.nextAt <= now || ((edgeUp || o.dueOrNot) && f.attempts > 0)),
      )
      .sort((a, b) => a.nextAt - b.nextAt || a.queuedAt - b.queuedAt)[0];
    if (!next) break;
    tried.add(next.key);
    const entry = outbox.claim(next);
    if (!entry) continue;
    let body: string;
    try {
      body = await entry.read();
    } catch (err) {
      // EACCES, EIO, EMFILE…: the file may be fine; put it back as it was, for the next pass.
      if (errno(err) === 'ENOENT') continue;
      await entry.retryAt(next.nextAt, entry.attempts).catch(() => {});
      log('error', 'report outbox file could not be read; left for the next pass', {
        file: next.name,
        code: errno(err) ?? null,
        error: errorMessage(err),
      });
      continue;
    }
    const report = parseKept(body);
    if (!report) {
      if (entry.quarantine('report outbox file is corrupt (not a report)')) result.quarantined++;
      continue;
    }
    const ids = { room: report.room, call_id: report.call_id };
    let outcome: PostOutcome;
    try {
      outcome = await postReport(report, o, 10_000);
    } catch (err) {
      outcome = { kind: 'retry', detail: errorMessage(err) };
    }
    const attempts = entry.attempts + 1;
    if (outcome.kind === 'delivered') {
      await entry.remove();
      result.delivered++;
      edgeUp = true;
      log('info', 'report delivered from the outbox', {
        ...ids,
        status: outcome.status,
        attempts,
        queued_ms: outbox.now() - entry.queuedAt,
      });
    } else if (outcome.kind === 'final') {
      await entry.remove();
      result.dropped++;
      log('error', 'report given up: the edge refused it', {
        ...ids,
        status: outcome.status,
        code: outcome.code,
        detail: outcome.detail,
      });
    } else {
      const delay = backoffMs(attempts, o.retryMs, maxBackoffMs);
      await entry.retryAt(outbox.now() + delay, attempts);
      if (outcome.kind === 'held')
        // Not the edge being down: its keys, its view of this room or this clock are wrong, and
        // someone has to act. Loud at every attempt, until it lands or a bound gives it up.
        log('error', 'report refused by the edge for now; kept in the outbox', {
          ...ids,
          status: outcome.status,
          code: outcome.code ?? null,
          attempts,
          detail: outcome.detail,
          retry_in_ms: delay,
        });
      else
        log('warn', 'report still not delivered; kept in the outbox', {
          ...ids,
          attempts,
          outcome: outcome.detail,
          retry_in_ms: delay,
        });
      break;
    }
  }
  result.kept = outbox.list().length;
  return result;
}

/**
 * The worker's loop: a pass at start, then one every `retryMs` (passes never overlap). Timers are
 * unref'd: the loop never holds the worker open. Stop with the returned function. `shuttingDown`
 * makes every held file due in each pass from then on, and starts one at once (after the pass
 * running, if any): a Machine being stopped delivers what it can before it goes.
 */
export function startOutboxDrain(
  outbox: ReportOutbox,
  o: DrainOptions,
): {
  stop(): void;
  pass(): Promise<DrainResult | undefined>;
  shuttingDown(): void;
  finalPass(deadline: number): Promise<void>;
} {
  let stopped = false;
  let dueOrNot = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<DrainResult | undefined> | undefined;
  const pass = () =>
    (running ??= drainOutbox(outbox, { ...o, dueOrNot })
      .then((result) => (o.onPass?.(result), result))
      .catch((err: unknown) => {
        o.log?.('error', 'report outbox pass failed', { error: errorMessage(err) });
        return undefined;
      })
      .finally(() => (running = undefined)));
  /** A pass once the running one (if any) is done: with `dueOrNot` just set, it must not join it. */
  const passAfterRunning = () => (running ?? Promise.resolve()).then(pass);
  const loop = () => {
    if (stopped) return;
    void pass().finally(() => {
      if (!stopped) timer = setTimeout(loop, o.retryMs).unref();
    });
  };
  outbox.ensure();
  loop();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    pass,
    shuttingDown() {
      if (dueOrNot || stopped) return;
      dueOrNot = true;
      void passAfterRunning();
    },
    /**
     * The last pass before the process exits (every held report due), awaited until `deadline`
     * at most: agents-js's CLI exits as soon as the drain returns.
     */
    async finalPass(deadline: number) {
      dueOrNot = true;
      const last = passAfterRunning();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>(
        (r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now()))),
      );
      await Promise.race([last, late]);
      clearTimeout(timer);
    },
  };
}
