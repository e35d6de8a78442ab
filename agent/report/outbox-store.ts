import { createHash, randomUUID } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  type Dirent,
} from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { errorMessage, type CallReport } from '../../wire-contract/index.ts';
import type { AgentConfig } from '../config.ts';
import type { LogFn } from '../log.ts';

/**
 * The durable outbox of end-of-call reports the edge could not take within a call's cleanup
 * budget (edge down, 5xx, 429, network, or a refusal that is not final): the files. One directory,
 * owned by the worker; no lock, no index (the worker's loop that posts them: outbox-drain.ts):
 *
 *   <dir>/<queuedAt>.<attempts>.<nextAt>.<key>.json   waiting; the name is the whole schedule
 *   <dir>/sending/<that name>~<host>~<pid>~<boot>~<claimedAt>   claimed by one process, posting it
 *   <dir>/tmp/<key>~<host>~<pid>~<boot>~<random>.tmp          being written (then renamed in)
 *   <dir>/quarantine/<movedAt>.<random>.<name>                what the outbox cannot use
 *
 * The file holds the report body exactly as it is posted; each post signs it afresh (signatures
 * expire in minutes). A job writes its report here before its first attempt (write-ahead, with a
 * `nextAt` past its own deadline and 0 attempts: the file is the job's until then), deletes it once
 * the edge took it or refused it for good, and otherwise hands it to the worker, due now, with one
 * attempt. A job killed mid-delivery leaves it too: the worker takes it once `nextAt` passes.
 *
 * The worker claims a file by renaming it into `sending/` (rename is atomic: of two workers sharing
 * the directory exactly one wins), and then removes it or renames it back with one more attempt
 * and a later `nextAt` (outbox-drain.ts says when). Before each pass it repairs what a crash or a clock can leave: a claim whose process is gone (same host, pid
 * dead, or this pid from an earlier boot) or older than the lease is returned; a whole report left
 * in `tmp/` by a writer that died before its rename is moved in; a file dated in the future is
 * dated now; what the outbox cannot use (a corrupt report, half a write, an outbox name that does
 * not parse) goes to `quarantine/`, where it counts against the bounds and is the first to go.
 * Files whose names the outbox never writes are someone else's (the directory may be shared):
 * never moved, counted or deleted, only named once in a warn line. Bounds (files, bytes, age):
 * the oldest are dropped first, each with a warn line naming its room and call id.
 */

/** The file-system calls the outbox makes that tests fake to fail (EACCES, EIO, EMFILE). */
export type OutboxIo = {
  readFile(path: string): Promise<string>;
  /** Makes the directory's entries (a rename into it) durable across a power loss. */
  syncDir(path: string): Promise<void>;
};

export type OutboxOptions = {
  log?: LogFn;
  now?: () => number;
  maxFiles?: number;
  maxBytes?: number;
  maxAgeMs?: number;
  /**
   * A claim older than this is taken back whoever holds it (a post takes ≤ 10 s); a temp file
   * older than this was left by a writer that died (a write takes milliseconds).
   */
  claimLeaseMs?: number;
  io?: Partial<OutboxIo>;
};

export type OutboxFile = {
  name: string;
  path: string;
  queuedAt: number;
  attempts: number;
  nextAt: number;
  key: string;
};

export type Dropped = { room?: string; call_id?: string; file?: string; why: string };

/** What a repair pass found and set right. */
export type Repaired = {
  returned: number;
  recovered: number;
  redated: number;
  quarantined: number;
};

const NAME = /^(\d+)\.(\d+)\.(\d+)\.([0-9a-f]{32})\.json$/;
const CLAIM = /^(.+\.json)~([^~]+)~(\d+)~([^~]+)~(\d+)$/;
const TMP = /^[0-9a-f]{32}~([^~]+)~(\d+)~([^~]+)~[0-9a-f]+\.tmp$/;
const QUARANTINED = /^(\d+)\.[0-9a-f]{8}\./;
/**
 * The shapes of the outbox's own names, whole or damaged: only these are ever moved or deleted.
 * REPORT_OUTBOX_DIR may be a shared directory (a volume's root): anything else in it, or in a
 * `tmp/`, `sending/` or `quarantine/` there, belongs to someone else and is left alone.
 */
const OUTBOX_LIKE = /^\d+\.\d+\.\d+\..*\.json$/;
const CLAIM_LIKE = /^\d+\.\d+\.\d+\..*\.json~/;
/** A temp file of this writer (`<key>~…`) or of earlier ones (`<key>.<pid>.<random>`). */
const TMP_LIKE = /^[0-9a-f]{32}[~.]/;
const DROPPED = /^\d+\.\d+\.\d+\.[0-9a-f]{32}\.json\.dropped$/;
const OWN_DIRS = new Set(['sending', 'tmp', 'quarantine']);
/**
 * No schedule this code writes is further ahead than this (the backoff stops at 1 h, a job's
 * window at minutes): a `nextAt` past it was written by a clock that has since moved back.
 */
export const SCHEDULE_HORIZON_MS = 2 * 3600_000;
/** A file dated this little in the future is left alone (two hosts' clocks sharing a disk). */
const FUTURE_SLACK_MS = 60_000;
const BOOT = randomUUID().slice(0, 8);
const HOST = hostname().replace(/[~/]/g, '_') || 'host';

const realIo: OutboxIo = {
  readFile: (path) => readFile(path, 'utf8'),
  async syncDir(path) {
    const fh = await open(path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};

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
  log?: LogFn,
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
  readonly #quarantine: string;
  readonly #log: LogFn;
  readonly #now: () => number;
  readonly #io: OutboxIo;
  readonly #o: Required<Omit<OutboxOptions, 'log' | 'now' | 'io'>>;
  /** This process's claims: host, pid and a per-boot id (a restarted worker may reuse a pid). */
  readonly #owner: string;
  /** Files that are not the outbox's have been named in a warn line (once per process). */
  #strangersLogged = false;

  constructor(dir: string, o: OutboxOptions = {}) {
    this.dir = dir;
    this.#sending = join(dir, 'sending');
    this.#tmp = join(dir, 'tmp');
    this.#quarantine = join(dir, 'quarantine');
    this.#log = o.log ?? (() => {});
    this.#now = o.now ?? Date.now;
    this.#io = { ...realIo, ...o.io };
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
        error: errorMessage(err),
      });
      return false;
    }
  }

  /**
   * Keeps a report (write to tmp, fsync, rename, fsync the directory: never half a file, and not
   * lost to a power cut once this resolves). `notBefore`: the worker does not post it before then
   * (the job is still trying). Undefined, logged, when it cannot be written.
   */
  async add(
    report: CallReport,
    { notBefore, attempts = 0 }: { notBefore?: number; attempts?: number } = {},
  ): Promise<OutboxEntry | undefined> {
    if (!this.ensure()) return undefined;
    const key = keyFor(report.call_id);
    const now = this.#now();
    const name = fileName(now, attempts, notBefore ?? now, key);
    const tmp = join(this.#tmp, `${key}~${this.#owner}~${randomUUID().slice(0, 8)}.tmp`);
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
        error: errorMessage(err),
      });
      return undefined;
    }
    await this.#syncDir({ room: report.room, call_id: report.call_id });
    return this.#entry(join(this.dir, name), name, now, key, 0);
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

  /**
   * Drops what is past the age, count and byte bounds, each with a warn line: quarantined files
   * first (they can never be delivered; aged from when they were moved), then the oldest reports.
   */
  async enforceBounds(): Promise<Dropped[]> {
    const now = this.#now();
    const files = this.list();
    const sizes = files.map((f) => sizeOf(f.path));
    const aside = this.#quarantined();
    let count = files.length + this.#claims().length + aside.length;
    let bytes = [...sizes, ...aside.map((q) => q.size)].reduce((a, b) => a + b, 0);
    const dropped: Dropped[] = [];
    const over = (age: number) =>
      age > this.#o.maxAgeMs
        ? 'older than REPORT_OUTBOX_MAX_AGE_HOURS'
        : count > this.#o.maxFiles
          ? 'outbox over REPORT_OUTBOX_MAX_FILES'
          : bytes > this.#o.maxBytes
            ? 'outbox over REPORT_OUTBOX_MAX_MB'
            : undefined;
    for (const q of aside) {
      const why = over(now - q.movedAt);
      if (!why) continue;
      try {
        rmSync(q.path, { force: true });
      } catch {
        continue;
      }
      count--;
      bytes -= q.size;
      dropped.push({ file: q.name, why });
      this.#log('warn', 'quarantined outbox file dropped', { file: q.name, why });
    }
    for (const [i, f] of files.entries()) {
      const why = over(now - f.queuedAt);
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

  /**
   * Sets right what a crash, a clock or a stranger left, before a pass: returns stale claims,
   * recovers unfinished writes, dates future files now, and moves names the outbox never writes
   * to `quarantine/`.
   */
  async repair(): Promise<Repaired> {
    const returned = this.returnStaleClaims();
    const { recovered, quarantined } = await this.#recoverWrites();
    const repaired = {
      returned,
      recovered,
      redated: this.#redate(),
      quarantined: quarantined + this.#quarantineDamaged(),
    };
    this.#noteStrangers();
    return repaired;
  }

  /**
   * Takes back claims whose holder is gone, or out of lease: this process's own too (its passes
   * never overlap, and a post takes seconds), such as one whose rename back failed.
   */
  returnStaleClaims(): number {
    const now = this.#now();
    let returned = 0;
    for (const claim of this.#claims()) {
      const m = CLAIM.exec(claim);
      if (!m || !parse(m[1]!, this.dir)) {
        this.#setAside(join(this.#sending, claim), claim, 'not an outbox claim');
        continue;
      }
      const [, name, host, pid, boot, at] = m;
      const stale =
        now - Number(at) > this.#o.claimLeaseMs ||
        (`${host}~${pid}~${boot}` !== this.#owner && this.#writerGone(host!, pid!, boot!));
      if (!stale) continue;
      try {
        renameSync(join(this.#sending, claim), join(this.dir, name!));
        returned++;
      } catch {
        /* returned or finished by someone else */
      }
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
    return this.#entry(claimed, f.name, f.queuedAt, f.key, f.attempts);
  }

  now(): number {
    return this.#now();
  }

  /** A file this process holds, with what it may do to it (through this outbox's file system). */
  #entry(path: string, name: string, queuedAt: number, key: string, attempts: number): OutboxEntry {
    return new OutboxEntry(
      { dir: this.dir, path, name, queuedAt, key, attempts },
      {
        reschedule: async (attempts, nextAt) => {
          await rename(path, join(this.dir, fileName(queuedAt, attempts, nextAt, key)));
        },
        read: () => this.#io.readFile(path),
        quarantine: (why) => this.#setAside(path, name, why),
      },
    );
  }

  /** Names in `sending/` shaped as claims (whole or damaged). */
  #claims(): string[] {
    return namesIn(this.#sending).filter((n) => CLAIM_LIKE.test(n));
  }

  /** Same host and its pid dead, or this very pid from an earlier boot (a container's pid 1). */
  #writerGone(host: string, pid: string, boot: string): boolean {
    if (host !== HOST) return false;
    if (Number(pid) === process.pid) return boot !== BOOT;
    return !alive(Number(pid));
  }

  /**
   * A temp file is a write in progress, or the leftover of a writer that died: a whole report
   * (it died between its fsync and its rename) is moved in, due now, as the worker's; half of one
   * (it died writing) goes to quarantine; a drop cut short is finished.
   */
  async #recoverWrites(): Promise<{ recovered: number; quarantined: number }> {
    let recovered = 0;
    let quarantined = 0;
    let names: string[];
    try {
      names = readdirSync(this.#tmp);
    } catch {
      return { recovered, quarantined };
    }
    for (const t of names) {
      const path = join(this.#tmp, t);
      if (DROPPED.test(t)) {
        rmSync(path, { force: true });
        continue;
      }
      if (!TMP_LIKE.test(t)) continue; // not the outbox's
      let mtimeMs: number;
      try {
        const st = lstatSync(path);
        if (st.isDirectory()) continue;
        mtimeMs = st.mtimeMs;
      } catch {
        continue; // renamed in by its writer meanwhile
      }
      const m = TMP.exec(t);
      if (m && `${m[1]}~${m[2]}~${m[3]}` === this.#owner) continue;
      // Either clock direction: a write takes milliseconds, whichever way the clock jumped since.
      const old = Math.abs(this.#now() - mtimeMs) > this.#o.claimLeaseMs;
      if (!old && !(m && this.#writerGone(m[1]!, m[2]!, m[3]!))) continue;
      let body: string;
      try {
        body = await this.#io.readFile(path);
      } catch (err) {
        if (errno(err) !== 'ENOENT')
          this.#log('error', 'unfinished outbox write could not be read; left for the next pass', {
            file: t,
            code: errno(err) ?? null,
            error: errorMessage(err),
          });
        continue;
      }
      const report = parseKept(body);
      if (!report) {
        if (this.#setAside(path, t, 'an unfinished write: not a whole report')) quarantined++;
        continue;
      }
      const now = this.#now();
      const name = fileName(Math.min(Math.round(mtimeMs), now), 1, now, keyFor(report.call_id));
      try {
        renameSync(path, join(this.dir, name));
      } catch {
        continue; // recovered by another worker meanwhile
      }
      const ids = { room: report.room, call_id: report.call_id };
      await this.#syncDir(ids);
      recovered++;
      this.#log('warn', 'report recovered from an unfinished outbox write', { ...ids, file: t });
    }
    return { recovered, quarantined };
  }

  /**
   * A file dated in the future was written by a clock that has since moved back: it would be
   * neither due nor aged out until the clock caught up. Its dates move back by as much as it is
   * ahead (so a job's window keeps its length), and no `nextAt` stays past the horizon.
   */
  #redate(): number {
    const now = this.#now();
    let redated = 0;
    for (const f of this.list()) {
      const ahead = f.queuedAt - now;
      let { queuedAt, nextAt } = f;
      if (ahead > FUTURE_SLACK_MS) {
        queuedAt = now;
        nextAt -= ahead;
      }
      if (nextAt > now + SCHEDULE_HORIZON_MS) nextAt = now;
      if (queuedAt === f.queuedAt && nextAt === f.nextAt) continue;
      try {
        renameSync(f.path, join(this.dir, fileName(queuedAt, f.attempts, nextAt, f.key)));
      } catch {
        continue; // claimed meanwhile
      }
      redated++;
      this.#log(
        'warn',
        'report outbox file dated in the future (the clock moved back); dated now',
        {
          file: f.name,
          queued_at: new Date(queuedAt).toISOString(),
          next_at: new Date(nextAt).toISOString(),
        },
      );
    }
    return redated;
  }

  /** Outbox names that do not parse (a damaged key or date): aside, so they are seen and bounded. */
  #quarantineDamaged(): number {
    let moved = 0;
    let entries: Dirent[];
    try {
      entries = readdirSync(this.dir, { withFileTypes: true });
    } catch {
      return 0;
    }
    for (const e of entries) {
      if (NAME.test(e.name) || !OUTBOX_LIKE.test(e.name) || e.isDirectory()) continue;
      if (this.#setAside(join(this.dir, e.name), e.name, 'not a usable outbox file name')) moved++;
    }
    return moved;
  }

  /**
   * Files here whose names the outbox never writes belong to someone else (REPORT_OUTBOX_DIR
   * shared with other files): left alone, and named once per process so the operator can give
   * the outbox a directory of its own.
   */
  #noteStrangers(): void {
    if (this.#strangersLogged) return;
    const strangers = [
      ...namesIn(this.dir).filter((n) => !OUTBOX_LIKE.test(n) && !OWN_DIRS.has(n)),
      ...namesIn(this.#tmp)
        .filter((n) => !TMP_LIKE.test(n) && !DROPPED.test(n))
        .map((n) => join('tmp', n)),
      ...namesIn(this.#sending)
        .filter((n) => !CLAIM_LIKE.test(n))
        .map((n) => join('sending', n)),
      ...namesIn(this.#quarantine)
        .filter((n) => !QUARANTINED.test(n))
        .map((n) => join('quarantine', n)),
    ];
    if (!strangers.length) return;
    this.#strangersLogged = true;
    this.#log(
      'warn',
      "files in the report outbox directory that are not the outbox's: left alone; give REPORT_OUTBOX_DIR a directory of its own",
      { dir: this.dir, count: strangers.length, files: strangers.slice(0, 5) },
    );
  }

  #setAside(path: string, name: string, why: string): boolean {
    const to = `${this.#now()}.${randomUUID().slice(0, 8)}.${name.slice(0, 200)}`;
    try {
      mkdirSync(this.#quarantine, { recursive: true });
      renameSync(path, join(this.#quarantine, to));
    } catch (err) {
      if (errno(err) !== 'ENOENT')
        this.#log('error', 'could not move a file to the outbox quarantine', {
          file: name,
          error: errorMessage(err),
        });
      return false;
    }
    this.#log('error', `${why}: moved to the outbox quarantine`, {
      file: name,
      quarantined_as: join('quarantine', to),
    });
    return true;
  }

  #quarantined(): { name: string; path: string; movedAt: number; size: number }[] {
    return namesIn(this.#quarantine)
      .filter((name) => QUARANTINED.test(name))
      .map((name) => {
        const path = join(this.#quarantine, name);
        return {
          name,
          path,
          movedAt: Number(QUARANTINED.exec(name)?.[1] ?? 0),
          size: sizeOf(path),
        };
      })
      .sort((a, b) => a.movedAt - b.movedAt || a.name.localeCompare(b.name));
  }

  async #syncDir(ids: { room?: string; call_id?: string }): Promise<void> {
    try {
      await this.#io.syncDir(this.dir);
    } catch (err) {
      this.#log('warn', 'report outbox directory not synced: a power cut may lose this report', {
        ...ids,
        dir: this.dir,
        error: errorMessage(err),
      });
    }
  }
}

/** What an entry does to its file, bound by the outbox that made it. */
type EntryOps = {
  reschedule(attempts: number, nextAt: number): Promise<void>;
  read(): Promise<string>;
  quarantine(why: string): boolean;
};

/** One kept report, held by this process (the job's write-ahead file, or a worker's claim). */
export class OutboxEntry {
  /** The outbox directory it is kept in. */
  readonly dir: string;
  readonly path: string;
  /** Its waiting name (the schedule it was claimed or written with). */
  readonly name: string;
  readonly queuedAt: number;
  readonly key: string;
  readonly attempts: number;
  readonly #ops: EntryOps;

  constructor(
    f: { dir: string; path: string; name: string; queuedAt: number; key: string; attempts: number },
    ops: EntryOps,
  ) {
    this.dir = f.dir;
    this.path = f.path;
    this.name = f.name;
    this.queuedAt = f.queuedAt;
    this.key = f.key;
    this.attempts = f.attempts;
    this.#ops = ops;
  }

  /** Delivered, or refused for good: forget it. */
  async remove(): Promise<void> {
    await rm(this.path, { force: true });
  }

  /** Not delivered yet: due again at `nextAt`, one more attempt counted. */
  retryAt(nextAt: number, attempts = this.attempts + 1): Promise<void> {
    return this.#ops.reschedule(attempts, nextAt);
  }

  read(): Promise<string> {
    return this.#ops.read();
  }

  /** Moves the file into `quarantine/` (the outbox cannot use it); false if it could not. */
  quarantine(why: string): boolean {
    return this.#ops.quarantine(why);
  }
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

function keyFor(callId: string): string {
  return createHash('sha256').update(callId).digest('hex').slice(0, 32);
}

/** The report a kept file holds, or undefined when it is not one (corrupt, half written). */
export function parseKept(body: string): CallReport | undefined {
  try {
    const r = JSON.parse(body) as Partial<CallReport> | null;
    return r && typeof r.room === 'string' && typeof r.call_id === 'string'
      ? (r as CallReport)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The names in `dir`; none when it cannot be read (missing, not a directory). */
function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function sizeOf(path: string): number {
  try {
    return lstatSync(path).size;
  } catch {
    return 0;
  }
}

/** The errno code of a failed fs call (ENOENT, EACCES…), if it has one. */
export function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
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
