import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import type { CallReport } from '../wire-contract/index.ts';
import { postReport, type PostOutcome } from './call-report.ts';
import type { AgentConfig } from './config.ts';

/**
 * The durable outbox of end-of-call reports the edge could not take within a call's cleanup
 * budget (edge down, 5xx, 429, network). One directory, owned by the worker; no lock, no index:
 *
 *   <dir>/<queuedAt>.<attempts>.<nextAt>.<key>.json   waiting; the name is the whole schedule
 *   <dir>/sending/<that name>~<host>~<pid>~<boot>~<claimedAt>   claimed by one process, posting it
 *   <dir>/tmp/…                                               being written (then renamed in)
 *
 * The file holds the report body exactly as it is posted; each post signs it afresh (signatures
 * expire in minutes). A job writes its report here before its first attempt (write-ahead, with a
 * `nextAt` past its own deadline, so the worker leaves it alone while the job still tries), deletes
 * it once the edge took it or refused it for good, and otherwise leaves it for the worker, due now.
 * A job killed mid-delivery leaves it too: the worker takes it once `nextAt` passes.
 *
 * The worker claims a file by renaming it into `sending/` (rename is atomic: of two workers sharing
 * the directory exactly one wins), posts it, and deletes it on 2xx (201 accepted, 200 duplicate:
 * both mean the edge has it; the edge is idempotent on call id) or on a final 4xx (logged), or
 * renames it back with one more attempt and a later `nextAt` (exponential backoff). A claim whose
 * process is gone (same host, pid dead, or this pid from an earlier boot) or older than the lease
 * is returned. Bounds (files, bytes, age): the oldest are dropped first, each with a warn line
 * naming its room and call id.
 */

export type OutboxLog = (
  level: 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export type OutboxOptions = {
  log?: OutboxLog;
  now?: () => number;
  maxFiles?: number;
  maxBytes?: number;
  maxAgeMs?: number;
  /** A claim older than this is taken back whoever holds it (a post takes ≤ 10 s). */
  claimLeaseMs?: number;
};

export type OutboxFile = {
  name: string;
  path: string;
  queuedAt: number;
  attempts: number;
  nextAt: number;
  key: string;
};

export type Dropped = { room?: string; call_id?: string; why: string };

const NAME = /^(\d+)\.(\d+)\.(\d+)\.([0-9a-f]{32})\.json$/;
const TMP_STALE_MS = 3600_000;
const BOOT = randomUUID().slice(0, 8);
const HOST = hostname().replace(/[~/]/g, '_') || 'host';

/** `REPORT_OUTBOX_DIR`, or one under the user's state dir per edge (an outbox belongs to one edge). */
export function defaultOutboxDir(edgeUrl: string, env: NodeJS.ProcessEnv = process.env): string {
  const state = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  const edge = new URL(edgeUrl).host.replace(/[^A-Za-z0-9.-]/g, '_');
  return join(state, 'livekit-voice-calls', 'outbox', edge);
}

/** The outbox directory this configuration uses; undefined when reports are not kept. */
export function outboxDirFor(config: {
  EDGE_URL?: string;
  REPORT_OUTBOX_DIR?: string;
}): string | undefined {
  if (!config.EDGE_URL || config.REPORT_OUTBOX_DIR === 'off') return undefined;
  return config.REPORT_OUTBOX_DIR ?? defaultOutboxDir(config.EDGE_URL);
}

/** The outbox as this configuration bounds it. */
export function outboxFor(
  config: AgentConfig,
  log?: OutboxLog,
  now?: () => number,
): ReportOutbox | undefined {
  const dir = outboxDirFor(config);
  if (!dir) return undefined;
  return new ReportOutbox(dir, {
    log,
    now,
    maxFiles: config.REPORT_OUTBOX_MAX_FILES,
    maxBytes: config.REPORT_OUTBOX_MAX_MB * 1024 * 1024,
    maxAgeMs: config.REPORT_OUTBOX_MAX_AGE_HOURS * 3600_000,
  });
}

export class ReportOutbox {
  readonly dir: string;
  readonly #sending: string;
  readonly #tmp: string;
  readonly #log: OutboxLog;
  readonly #now: () => number;
  readonly #o: Required<Omit<OutboxOptions, 'log' | 'now'>>;
  /** This process's claims: host, pid and a per-boot id (a restarted worker may reuse a pid). */
  readonly #owner: string;

  constructor(dir: string, o: OutboxOptions = {}) {
    this.dir = dir;
    this.#sending = join(dir, 'sending');
    this.#tmp = join(dir, 'tmp');
    this.#log = o.log ?? (() => {});
    this.#now = o.now ?? Date.now;
    this.#o = {
      maxFiles: o.maxFiles ?? 5000,
      maxBytes: o.maxBytes ?? 500 * 1024 * 1024,
      maxAgeMs: o.maxAgeMs ?? 72 * 3600_000,
      claimLeaseMs: o.claimLeaseMs ?? 5 * 60_000,
    };
    this.#owner = `${HOST}~${process.pid}~${BOOT}`;
  }

  /** Creates the directories; false (logged, never thrown) when they cannot be. */
  ensure(): boolean {
    try {
      for (const d of [this.dir, this.#sending, this.#tmp]) mkdirSync(d, { recursive: true });
      return true;
    } catch (err) {
      this.#log('warn', 'report outbox is not writable: undelivered reports cannot be kept', {
        dir: this.dir,
        error: message(err),
      });
      return false;
    }
  }

  /**
   * Keeps a report (write to tmp, fsync, rename: never half a file). `notBefore`: the worker does
   * not post it before then (the job is still trying). Undefined, logged, when it cannot be written.
   */
  async add(
    report: CallReport,
    { notBefore, attempts = 0 }: { notBefore?: number; attempts?: number } = {},
  ): Promise<OutboxEntry | undefined> {
    if (!this.ensure()) return undefined;
    const key = createHash('sha256').update(report.call_id).digest('hex').slice(0, 32);
    const now = this.#now();
    const name = fileName(now, attempts, notBefore ?? now, key);
    const tmp = join(this.#tmp, `${key}.${process.pid}.${randomUUID().slice(0, 8)}`);
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(JSON.stringify(report));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.dir, name));
    } catch (err) {
      await rm(tmp, { force: true });
      this.#log('warn', 'could not keep the report in the outbox', {
        dir: this.dir,
        room: report.room,
        call_id: report.call_id,
        error: message(err),
      });
      return undefined;
    }
    return new OutboxEntry(this, join(this.dir, name), now, key);
  }

  /** Waiting files (not claimed), oldest first. */
  list(): OutboxFile[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names
      .map((name) => parse(name, this.dir))
      .filter((f): f is OutboxFile => f !== undefined)
      .sort((a, b) => a.queuedAt - b.queuedAt || a.key.localeCompare(b.key));
  }

  /** Drops what is past the age, count and byte bounds, oldest first, each with a warn line. */
  async enforceBounds(): Promise<Dropped[]> {
    const now = this.#now();
    const files = this.list();
    const sizes = files.map((f) => {
      try {
        return statSync(f.path).size;
      } catch {
        return 0;
      }
    });
    let count = files.length + this.#claims().length;
    let bytes = sizes.reduce((a, b) => a + b, 0);
    const dropped: Dropped[] = [];
    for (const [i, f] of files.entries()) {
      const why =
        now - f.queuedAt > this.#o.maxAgeMs
          ? 'older than REPORT_OUTBOX_MAX_AGE_HOURS'
          : count > this.#o.maxFiles
            ? 'outbox over REPORT_OUTBOX_MAX_FILES'
            : bytes > this.#o.maxBytes
              ? 'outbox over REPORT_OUTBOX_MAX_MB'
              : undefined;
      if (!why) continue;
      const ids = readIds(f.path);
      try {
        renameSync(f.path, join(this.#tmp, `${f.name}.dropped`));
      } catch {
        continue; // claimed or dropped by another process meanwhile
      }
      rmSync(join(this.#tmp, `${f.name}.dropped`), { force: true });
      count--;
      bytes -= sizes[i]!;
      const d = { ...ids, why };
      dropped.push(d);
      this.#log('warn', 'report given up: not delivered', {
        ...d,
        queued_at: new Date(f.queuedAt).toISOString(),
        attempts: f.attempts,
      });
    }
    return dropped;
  }

  /** Takes back claims whose holder is gone (or out of lease), and old temp files. */
  returnStaleClaims(): number {
    const now = this.#now();
    let returned = 0;
    for (const claim of this.#claims()) {
      const [name, host, pid, boot, at] = claim.split('~');
      if (!name || !parse(name, this.dir)) continue;
      if (`${host}~${pid}~${boot}` === this.#owner) continue;
      const sameHost = host === HOST;
      const stale =
        now - Number(at) > this.#o.claimLeaseMs ||
        (sameHost && (Number(pid) === process.pid || !alive(Number(pid))));
      if (!stale) continue;
      try {
        renameSync(join(this.#sending, claim), join(this.dir, name));
        returned++;
      } catch {
        /* returned or finished by someone else */
      }
    }
    try {
      for (const t of readdirSync(this.#tmp)) {
        const p = join(this.#tmp, t);
        if (Date.now() - statSync(p).mtimeMs > TMP_STALE_MS) rmSync(p, { force: true });
      }
    } catch {
      /* nothing to clean */
    }
    return returned;
  }

  /** Claims a waiting file for this process; undefined if another process got it first. */
  claim(f: OutboxFile): OutboxEntry | undefined {
    const claimed = join(this.#sending, `${f.name}~${this.#owner}~${this.#now()}`);
    try {
      renameSync(f.path, claimed);
    } catch {
      return undefined;
    }
    return new OutboxEntry(this, claimed, f.queuedAt, f.key, f.attempts);
  }

  /** @internal Puts a file back as waiting, with its new schedule. */
  async reschedule(entry: OutboxEntry, attempts: number, nextAt: number): Promise<void> {
    await rename(entry.path, join(this.dir, fileName(entry.queuedAt, attempts, nextAt, entry.key)));
  }

  now(): number {
    return this.#now();
  }

  #claims(): string[] {
    try {
      return readdirSync(this.#sending);
    } catch {
      return [];
    }
  }
}

/** One kept report, held by this process (the job's write-ahead file, or a worker's claim). */
export class OutboxEntry {
  readonly outbox: ReportOutbox;
  readonly path: string;
  readonly queuedAt: number;
  readonly key: string;
  readonly attempts: number;

  constructor(outbox: ReportOutbox, path: string, queuedAt: number, key: string, attempts = 0) {
    this.outbox = outbox;
    this.path = path;
    this.queuedAt = queuedAt;
    this.key = key;
    this.attempts = attempts;
  }

  /** Delivered, or refused for good: forget it. */
  async remove(): Promise<void> {
    await rm(this.path, { force: true });
  }

  /** Not delivered yet: due again at `nextAt`, one more attempt counted. */
  retryAt(nextAt: number, attempts = this.attempts + 1): Promise<void> {
    return this.outbox.reschedule(this, attempts, nextAt);
  }

  read(): Promise<string> {
    return readFile(this.path, 'utf8');
  }
}

export type DrainOptions = {
  edgeUrl: string;
  apiKey: string;
  apiSecret: string;
  /** First retry delay; doubles per attempt up to `maxBackoffMs`. */
  retryMs: number;
  maxBackoffMs?: number;
  log?: OutboxLog;
  fetchImpl?: typeof fetch;
};

export type DrainResult = { delivered: number; dropped: number; kept: number; returned: number };

/** The delay before attempt `attempts + 1`: exponential, capped, ±20 % jitter. */
export function backoffMs(attempts: number, retryMs: number, maxBackoffMs: number): number {
  const base = Math.min(retryMs * 2 ** Math.max(0, attempts - 1), maxBackoffMs);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * One pass of the worker over the outbox: returns stale claims, enforces the bounds, then posts
 * every due file, oldest first. The first retryable failure ends the pass (the edge is down: one
 * probe per pass, not one per file); once one lands, files not yet due go too (the edge is back).
 */
export async function drainOutbox(outbox: ReportOutbox, o: DrainOptions): Promise<DrainResult> {
  const log = o.log ?? (() => {});
  const maxBackoffMs = o.maxBackoffMs ?? Math.min(3600_000, 64 * o.retryMs);
  const result: DrainResult = { delivered: 0, dropped: 0, kept: 0, returned: 0 };
  result.returned = outbox.returnStaleClaims();
  result.dropped += (await outbox.enforceBounds()).length;
  let edgeUp = false;
  const tried = new Set<string>();
  for (;;) {
    const now = outbox.now();
    const next = outbox
      .list()
      .filter((f) => !tried.has(f.key) && (edgeUp || f.nextAt <= now))
      .sort((a, b) => a.nextAt - b.nextAt || a.queuedAt - b.queuedAt)[0];
    if (!next) break;
    tried.add(next.key);
    const entry = outbox.claim(next);
    if (!entry) continue;
    let body: string;
    let report: CallReport;
    try {
      body = await entry.read();
      report = JSON.parse(body) as CallReport;
      if (typeof report.room !== 'string' || typeof report.call_id !== 'string')
        throw new Error('not a report');
    } catch (err) {
      await entry.remove();
      result.dropped++;
      log('error', 'report given up: its outbox file is unreadable', {
        file: next.name,
        error: message(err),
      });
      continue;
    }
    const ids = { room: report.room, call_id: report.call_id };
    let outcome: PostOutcome;
    try {
      outcome = await postReport(report, o, 10_000);
    } catch (err) {
      outcome = { kind: 'retry', detail: message(err) };
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
      log('error', 'report given up: the edge refused it', { ...ids, detail: outcome.detail });
    } else {
      const delay = backoffMs(attempts, o.retryMs, maxBackoffMs);
      await entry.retryAt(outbox.now() + delay, attempts);
      result.kept++;
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
 * unref'd: the loop never holds the worker open. Stop with the returned function.
 */
export function startOutboxDrain(
  outbox: ReportOutbox,
  o: DrainOptions,
): { stop(): void; pass(): Promise<DrainResult | undefined> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<DrainResult | undefined> | undefined;
  const pass = () =>
    (running ??= drainOutbox(outbox, o)
      .catch((err: unknown) => {
        o.log?.('error', 'report outbox pass failed', { error: message(err) });
        return undefined;
      })
      .finally(() => (running = undefined)));
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
  };
}

function fileName(queuedAt: number, attempts: number, nextAt: number, key: string): string {
  return `${queuedAt}.${attempts}.${Math.max(0, Math.round(nextAt))}.${key}.json`;
}

function parse(name: string, dir: string): OutboxFile | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  return {
    name,
    path: join(dir, name),
    queuedAt: Number(m[1]),
    attempts: Number(m[2]),
    nextAt: Number(m[3]),
    key: m[4]!,
  };
}

function readIds(path: string): { room?: string; call_id?: string } {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as Partial<CallReport>;
    return { room: r.room, call_id: r.call_id };
  } catch {
    return {};
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
