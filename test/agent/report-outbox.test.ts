import { initializeLogger } from '@livekit/agents';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CallLifecycle } from '../../agent/call/lifecycle.ts';
import { loadAgentConfig } from '../../agent/config.ts';
import { liveKitEndSteps, type CallContext } from '../../agent/end-steps.ts';
import { callReportFor } from '../support/call-report-fixture.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { verifySignedBody, type CallReport } from '../../wire-contract/index.ts';
import { drainOutbox, startOutboxDrain } from '../../agent/report/outbox-drain.ts';
import { defaultOutboxDir, outboxDirFor, ReportOutbox } from '../../agent/report/outbox-store.ts';
import type { LogFn } from '../../agent/log.ts';
import { JOB_FIGURES_DIR_ENV, type JobFigures } from '../../agent/process/job-figures.ts';

const summary = (room: string) => ({
  reason: 'participant_left' as const,
  room,
  jobId: `AJ_${room}`,
  startedAt: new Date(1_000_000),
  endedAt: new Date(1_060_000),
});

/** A stand-in edge: answers each report with the next scripted status, records what it got. */
type Got = { room: string; callId: string; verified: boolean };
initializeLogger({ pretty: false, level: 'fatal' });
const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});
/** A status, or a refusal in the edge's error shape (edge/errors.ts: `{ error: { code, message } }`). */
type Answer = number | { status: number; code: string };
async function edge(answer: (got: Got, n: number) => Answer, port?: number) {
  const got: Got[] = [];
  const seen = new Set<string>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      void (async () => {
        const report = JSON.parse(body) as CallReport;
        const verified = (await verifySignedBody(body, req.headers.authorization, 'k', 's')).ok;
        const g = { room: report.room, callId: report.call_id, verified };
        got.push(g);
        const a = answer(g, got.length);
        let status = typeof a === 'number' ? a : a.status;
        if (status === 201 && seen.has(g.callId)) status = 200;
        if (status === 201) seen.add(g.callId);
        const reply =
          typeof a === 'number' ? {} : { error: { code: a.code, message: `refused: ${a.code}` } };
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
      })();
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(port ?? 0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, got, accepted: seen };
}

/** The report a job writes when the caller hung up, at a fixed time. */
function reportFor(room: string, at = '2026-01-01T00:00:00.000Z'): CallReport {
  return callReportFor(room, {
    end_reason: 'participant_left',
    ended_by: 'user',
    started_at: at,
    ended_at: at,
    duration_ms: 0,
    transcript: [{ role: 'assistant', text: `Hello ${room}`, at }],
  });
}

/** How the worker drains the outbox into the stand-in edge at `edgeUrl`. */
const drainOptions = (edgeUrl: string, log: LogFn) => ({
  edgeUrl,
  apiKey: 'k',
  apiSecret: 's',
  retryMs: 1000,
  log,
});

function logs() {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const log: LogFn = (level, msg, fields = {}) => lines.push({ level, msg, fields });
  return { lines, log };
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const freshDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'outbox-test-'));
  dirs.push(d);
  return d;
};
const waiting = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.json'));

/** The agent's config with the edge at `edgeUrl` and the outbox in `dir`. */
const agentConfig = (edgeUrl: string, dir: string) =>
  loadAgentConfig({
    LIVEKIT_URL: 'ws://127.0.0.1:1',
    LIVEKIT_API_KEY: 'k',
    LIVEKIT_API_SECRET: 's',
    OPENAI_API_KEY: 'sk',
    EDGE_URL: edgeUrl,
    REPORT_OUTBOX_DIR: dir,
  });

/** An outbox the stand-in edge is reached from, the way the job's report step uses it. */
function jobSteps(room: string, edgeUrl: string, dir: string, roomSid = `RM_${room}`) {
  return liveKitEndSteps({
    ctx: {
      room: { name: room, isConnected: false, remoteParticipants: new Map() },
      job: { room: { name: room } },
      info: { url: 'ws://127.0.0.1:1', apiKey: 'k', apiSecret: 's' },
    } as unknown as CallContext['ctx'],
    session: () => undefined,
    config: agentConfig(edgeUrl, dir),
    endMode: 'end_for_all',
    agentName: 'voice-agent',
    roomSid: () => roomSid,
    errors: [],
    realtime: false,
  });
}

describe('the job keeps a report the edge cannot take now', () => {
  it('edge down past the cleanup budget: the report step ends on time and the report waits in the outbox', async () => {
    const dir = freshDir();
    const downPort = await freePort(); // nothing listens: connection refused
    const down = `http://127.0.0.1:${downPort}`;
    expect(agentConfig(down, dir).REPORT_OUTBOX_DIR).toBe(dir);
    const steps = jobSteps('call-o1', down, dir, 'RM_o1');
    // Resolves (the report is safe), instead of throwing "report not delivered".
    await steps.report(summary('call-o1'), [], Date.now() + 600);
    const files = waiting(dir);
    expect(files).toHaveLength(1);
    const kept = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as CallReport;
    expect(kept).toMatchObject({ room: 'call-o1', call_id: 'RM_o1:AJ_call-o1' });

    // The edge is back: the worker's drain delivers it once, freshly signed, and forgets it.
    const up = await edge(() => 201, downPort);
    const { log } = logs();
    const result = await drainOutbox(new ReportOutbox(dir, { log }), drainOptions(up.url, log));
    expect(result).toMatchObject({ delivered: 1 });
    expect(up.got).toEqual([{ room: 'call-o1', callId: 'RM_o1:AJ_call-o1', verified: true }]);
    expect(waiting(dir)).toEqual([]);
  });

  it('a report the edge takes at once leaves nothing behind; a final 4xx is not kept', async () => {
    const dir = freshDir();
    const ok = await edge((g) =>
      g.room === 'call-refused' ? { status: 400, code: 'invalid_field' } : 201,
    );
    for (const room of ['call-fine', 'call-refused']) {
      const done = jobSteps(room, ok.url, dir, 'RM').report(summary(room), [], Date.now() + 5_000);
      if (room === 'call-refused') await expect(done).rejects.toThrow(/edge refused/);
      else await done;
    }
    expect(ok.got.map((g) => g.room)).toEqual(['call-fine', 'call-refused']);
    expect(waiting(dir)).toEqual([]);
  });

  it('each call’s end and its report’s fate reach the worker’s /metrics (job figures): delivered, refused, kept', async () => {
    const dir = freshDir();
    const figuresDir = freshDir();
    const before = process.env[JOB_FIGURES_DIR_ENV];
    process.env[JOB_FIGURES_DIR_ENV] = figuresDir;
    try {
      const ok = await edge((g) =>
        g.room === 'call-no' ? { status: 400, code: 'invalid_field' } : 201,
      );
      await jobSteps('call-yes', ok.url, dir).report(summary('call-yes'), [], Date.now() + 5_000);
      await expect(
        jobSteps('call-no', ok.url, dir).report(summary('call-no'), [], Date.now() + 5_000),
      ).rejects.toThrow(/edge refused/);
      const down = `http://127.0.0.1:${await freePort()}`;
      await jobSteps('call-later', down, dir).report(summary('call-later'), [], Date.now() + 600);
      const figures = Object.fromEntries(
        readdirSync(figuresDir).map((f) => [
          f,
          JSON.parse(readFileSync(join(figuresDir, f), 'utf8')) as JobFigures,
        ]),
      );
      expect(figures).toEqual({
        'AJ_call-yes.json': {
          end_reason: 'participant_left',
          report: 'delivered',
          turn_e2e_ms: [],
        },
        'AJ_call-no.json': { end_reason: 'participant_left', report: 'refused', turn_e2e_ms: [] },
        'AJ_call-later.json': { end_reason: 'participant_left', report: 'kept', turn_e2e_ms: [] },
      });
    } finally {
      if (before === undefined) delete process.env[JOB_FIGURES_DIR_ENV];
      else process.env[JOB_FIGURES_DIR_ENV] = before;
    }
  });

  it('a deadline that comes while the report is being posted (the worker lost) stops the delivery and hands the report to the worker, due at once', async () => {
    const dir = freshDir();
    // An edge that takes the connection and never answers.
    let posts = 0;
    const hanging = createServer(() => void posts++);
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`;
      const lifecycle = new CallLifecycle({
        room: 'call-cut',
        jobId: 'AJ_call-cut',
        cleanupBudgetMs: 20_000,
        reportReserveMs: 10_000,
        stepTimeoutMs: 1_000,
        defaultHookTimeoutMs: 1_000,
        log: () => {},
      });
      lifecycle.attach(jobSteps('call-cut', url, dir));
      void lifecycle.end('participant_left');
      await until(() => posts === 1, 5_000);
      const gone = Date.now() + 500; // this process is gone then, whatever runs
      void lifecycle.end('drain', { deadline: gone });
      await lifecycle.finished;
      // The job's write-ahead file was the job's until 30 s past the old deadline: it is the
      // worker's now, due at once, in the moments the process has left after its deadline.
      const handedOver = () =>
        new ReportOutbox(dir).list().some((f) => f.attempts === 1 && f.nextAt <= Date.now());
      await until(handedOver, 300);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(posts, 'no post after the deadline').toBe(1);
    } finally {
      hanging.closeAllConnections();
      hanging.close();
    }
  });
});

/** Resolves once `ok()` holds; fails after `timeoutMs`. */
async function until(ok: () => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the worker drains the outbox', () => {
  it('201 and 200 (duplicate) both mean delivered; a final refusal is dropped with a log line naming the call', async () => {
    const dir = freshDir();
    const { lines, log } = logs();
    const outbox = new ReportOutbox(dir, { log });
    for (const room of ['call-a', 'call-b', 'call-c']) await outbox.add(reportFor(room));
    // call-b was delivered before (its response lost): the edge answers 200 duplicate. call-c's
    // room was never issued by this edge (an /admit of a room it does not know): never accepted.
    const e = await edge((g) =>
      g.room === 'call-c' ? { status: 404, code: 'call_not_found' } : 201,
    );
    e.accepted.add('RM_call-b:AJ_call-b');
    const result = await drainOutbox(outbox, drainOptions(e.url, log));
    expect(result).toMatchObject({ delivered: 2, dropped: 1, kept: 0 });
    expect(waiting(dir)).toEqual([]);
    const refused = lines.find((l) => l.msg.includes('refused'))!;
    expect(refused).toMatchObject({ level: 'error' });
    expect(refused.fields).toMatchObject({ room: 'call-c', call_id: 'RM_call-c:AJ_call-c' });
  });

  it('5xx, 429 and network errors keep the report with exponential backoff; one probe per pass while the edge is down', async () => {
    const dir = freshDir();
    let now = 1_000_000;
    const { log } = logs();
    const outbox = new ReportOutbox(dir, { log, now: () => now });
    for (const room of ['call-1', 'call-2', 'call-3']) await outbox.add(reportFor(room));
    let status = 503;
    const e = await edge(() => status);
    const opts = drainOptions(e.url, log);
    expect(await drainOutbox(outbox, opts)).toMatchObject({ delivered: 0, kept: 3 });
    expect(e.got).toHaveLength(1); // the first failure stops the pass: the edge is down
    const first = outbox.list().find((f) => f.attempts === 1)!;
    expect(first.nextAt - now).toBeGreaterThanOrEqual(800);
    expect(first.nextAt - now).toBeLessThanOrEqual(1200);

    status = 429;
    await drainOutbox(outbox, opts); // the next due one is probed
    status = 503;
    await drainOutbox(outbox, opts); // and the last
    expect(outbox.list().map((f) => f.attempts)).toEqual([1, 1, 1]);
    expect(await drainOutbox(outbox, opts)).toMatchObject({ delivered: 0, kept: 3 });
    expect(e.got).toHaveLength(3); // none due: no post at all
    now += 1_300;
    await drainOutbox(outbox, opts);
    const twice = outbox.list().find((f) => f.attempts === 2)!;
    expect(twice.nextAt - now).toBeGreaterThanOrEqual(1600); // doubled
    expect(twice.nextAt - now).toBeLessThanOrEqual(2400);
    expect(e.got).toHaveLength(4);

    // Back: the first due report lands, and then every other one goes too, due or not.
    status = 201;
    now += 5_000;
    expect(await drainOutbox(outbox, opts)).toMatchObject({ delivered: 3, kept: 0 });
    expect([...e.accepted].sort()).toEqual([
      'RM_call-1:AJ_call-1',
      'RM_call-2:AJ_call-2',
      'RM_call-3:AJ_call-3',
    ]);
    expect(waiting(dir)).toEqual([]);

    // Connection refused counts as retryable too.
    await outbox.add(reportFor('call-4'));
    const down = `http://127.0.0.1:${await freePort()}`;
    expect(await drainOutbox(outbox, { ...opts, edgeUrl: down })).toMatchObject({ kept: 1 });
    expect(outbox.list()).toHaveLength(1);
  });

  it('shutting down (a deploy, the autoscaler stopping the Machine), every held report is due at once, backoff or not; a live job’s write-ahead file still waits', async () => {
    const dir = freshDir();
    const now = 1_000_000;
    const { log } = logs();
    const outbox = new ReportOutbox(dir, { log, now: () => now });
    // Both held with an hour's backoff (three failed tries): no pass would post them before then.
    for (const room of ['held-1', 'held-2'])
      await outbox.add(reportFor(room), { attempts: 3, notBefore: now + 3600_000 });
    await outbox.add(reportFor('live-job'), { notBefore: now + 60_000 });
    const e = await edge(() => 201);
    const opts = drainOptions(e.url, log);
    expect(await drainOutbox(outbox, opts)).toMatchObject({ delivered: 0, kept: 3 });
    expect(e.got).toHaveLength(0);

    const drain = startOutboxDrain(outbox, { ...opts, retryMs: 3600_000 });
    await drain.pass();
    expect(e.got).toHaveLength(0);
    drain.shuttingDown();
    await waitFor('the held reports delivered', async () => e.accepted.size === 2 || undefined);
    drain.stop();

    // The last pass, awaited before the process exits, also takes what was kept meanwhile.
    await outbox.add(reportFor('held-3'), { attempts: 2, notBefore: now + 3600_000 });
    const last = startOutboxDrain(outbox, { ...opts, retryMs: 3600_000 });
    await last.pass();
    await last.finalPass(Date.now() + 5_000);
    last.stop();
    expect(e.accepted.has('RM_held-3:AJ_held-3')).toBe(true);
    expect([...e.accepted].sort()).toEqual([
      'RM_held-1:AJ_held-1',
      'RM_held-2:AJ_held-2',
      'RM_held-3:AJ_held-3',
    ]);
    expect(outbox.list().map((f) => f.attempts)).toEqual([0]);
  });

  it('bounded: past REPORT_OUTBOX_MAX_FILES and REPORT_OUTBOX_MAX_AGE_HOURS the oldest go first, each named in a warn line', async () => {
    const dir = freshDir();
    let now = 10 * 3600_000;
    const { lines, log } = logs();
    const outbox = new ReportOutbox(dir, {
      log,
      now: () => now,
      maxFiles: 2,
      maxAgeMs: 3600_000,
      maxBytes: 1e9,
    });
    await outbox.add(reportFor('call-old')); // will be too old
    now += 1800_000;
    for (const room of ['call-x', 'call-y', 'call-z']) {
      await outbox.add(reportFor(room));
      now += 1;
    }
    now += 1900_000; // call-old is 62 minutes old
    const dropped = await outbox.enforceBounds();
    expect(dropped.map((d) => d.room)).toEqual(['call-old', 'call-x']);
    const warns = lines.filter((l) => l.level === 'warn' && /given up/.test(l.msg));
    expect(warns.map((w) => [w.fields.room, w.fields.call_id])).toEqual([
      ['call-old', 'RM_call-old:AJ_call-old'],
      ['call-x', 'RM_call-x:AJ_call-x'],
    ]);
    expect(outbox.list().map((f) => f.key)).toHaveLength(2);
  });

  it('bounded in bytes too: the oldest go first', async () => {
    const dir = freshDir();
    let now = 1;
    const { log } = logs();
    const size = Buffer.byteLength(JSON.stringify(reportFor('call-s1')));
    const outbox = new ReportOutbox(dir, { log, now: () => now++, maxBytes: size * 2 + 10 });
    for (const room of ['call-s1', 'call-s2', 'call-s3']) await outbox.add(reportFor(room));
    expect((await outbox.enforceBounds()).map((d) => d.room)).toEqual(['call-s1']);
  });

  it('two workers sharing the directory deliver each report exactly once', async () => {
    const dir = freshDir();
    const { log } = logs();
    const a = new ReportOutbox(dir, { log });
    const b = new ReportOutbox(dir, { log });
    const rooms = Array.from({ length: 30 }, (_, i) => `call-share-${i}`);
    for (const room of rooms) await a.add(reportFor(room));
    const e = await edge(() => 201);
    const opts = drainOptions(e.url, log);
    const [ra, rb] = await Promise.all([drainOutbox(a, opts), drainOutbox(b, opts)]);
    expect(ra.delivered + rb.delivered).toBe(30);
    expect(e.got).toHaveLength(30); // no report was posted twice
    expect(new Set(e.got.map((g) => g.room)).size).toBe(30);
    expect(waiting(dir)).toEqual([]);
  });

  it("a dead process's claim is returned and delivered; a live one's is left alone", async () => {
    const dir = freshDir();
    const { log } = logs();
    const outbox = new ReportOutbox(dir, { log });
    await outbox.add(reportFor('call-dead'));
    await outbox.add(reportFor('call-live'));
    const [dead, live] = ['call-dead', 'call-live'].map((room) =>
      outbox.list().find((f) => readFileSync(f.path, 'utf8').includes(room))!,
    );
    const host = hostname().replace(/[~/]/g, '_');
    // A worker killed mid-post (its pid is gone) and one that is alive (this test's parent).
    renameSync(
      dead!.path,
      join(dir, 'sending', `${dead!.name}~${host}~999999999~old~${Date.now()}`),
    );
    renameSync(
      live!.path,
      join(dir, 'sending', `${live!.name}~${host}~${process.ppid}~other~${Date.now()}`),
    );
    const e = await edge(() => 201);
    await drainOutbox(outbox, drainOptions(e.url, log));
    expect(e.got.map((g) => g.room)).toEqual(['call-dead']);
    expect(readdirSync(join(dir, 'sending'))).toHaveLength(1);
  });

  it("this worker's own claim, left in sending/ when putting it back failed, is returned once older than the lease", async () => {
    const dir = freshDir();
    let now = 1_000_000;
    const { log } = logs();
    const outbox = new ReportOutbox(dir, { log, now: () => now, claimLeaseMs: 60_000 });
    await outbox.add(reportFor('call-stuck'), { attempts: 1 });
    // Claimed by this process for a post; the rename that would have put it back failed.
    expect(outbox.claim(outbox.list()[0]!)).toBeDefined();
    const e = await edge(() => 201);
    const opts = drainOptions(e.url, log);
    await drainOutbox(outbox, opts);
    expect(e.got).toEqual([]); // within the lease it may still be this worker's post in flight
    now += 60_001;
    expect(await drainOutbox(outbox, opts)).toMatchObject({ returned: 1, delivered: 1 });
    expect(e.got.map((g) => g.room)).toEqual(['call-stuck']);
    expect(readdirSync(join(dir, 'sending'))).toEqual([]);
  });

  it('a report the job is still delivering is not posted by the worker before its time', async () => {
    const dir = freshDir();
    let now = 1_000;
    const { log } = logs();
    const outbox = new ReportOutbox(dir, { log, now: () => now });
    const entry = await outbox.add(reportFor('call-busy'), { notBefore: now + 30_000 });
    expect(entry).toBeDefined();
    const e = await edge(() => 201);
    const opts = drainOptions(e.url, log);
    await drainOutbox(outbox, opts);
    expect(e.got).toHaveLength(0);
    now += 30_001; // the job died without finishing: the worker takes over
    await drainOutbox(outbox, opts);
    expect(e.got.map((g) => g.room)).toEqual(['call-busy']);
  });

  it('a corrupt file (not a report) is moved to quarantine/ with an error line, never retried forever', async () => {
    const dir = freshDir();
    const { lines, log } = logs();
    const outbox = new ReportOutbox(dir, { log });
    await outbox.add(reportFor('call-bad'));
    const corrupt = outbox.list()[0]!;
    writeFileSync(corrupt.path, '{not json');
    const e = await edge(() => 201);
    const opts = drainOptions(e.url, log);
    await drainOutbox(outbox, opts);
    await drainOutbox(outbox, opts);
    expect(e.got).toHaveLength(0);
    expect(waiting(dir)).toEqual([]);
    expect(quarantined(dir)).toEqual([expect.stringContaining(corrupt.name)]);
    const corruptLines = lines.filter((l) => l.level === 'error' && /corrupt/.test(l.msg));
    expect(corruptLines).toHaveLength(1);
    expect(corruptLines[0]!.fields).toMatchObject({ file: corrupt.name });
  });
});

const quarantined = (dir: string) =>
  existsSync(join(dir, 'quarantine')) ? readdirSync(join(dir, 'quarantine')) : [];
const keyOf = (callId: string) => createHash('sha256').update(callId).digest('hex').slice(0, 32);
const host = hostname().replace(/[~/]/g, '_');

describe('only a refusal that can never change drops a report', () => {
  it('401 (a key rotation, a clock minutes off): the job keeps the report, the worker retries it with an error line each time, and delivers it once the edge accepts', async () => {
    const dir = freshDir();
    let answer: Answer = { status: 401, code: 'invalid_signature' };
    const e = await edge(() => answer);
    // The report step resolves: the report is safe in the outbox, not refused for good.
    await jobSteps('call-rotated', e.url, dir).report(
      summary('call-rotated'),
      [],
      Date.now() + 5_000,
    );
    expect(waiting(dir)).toHaveLength(1);
    expect(e.got).toHaveLength(1); // a refusal is not retried at once: the outbox backs off

    let now = Date.now();
    const { lines, log } = logs();
    const outbox = new ReportOutbox(dir, { log, now: () => now });
    const opts = drainOptions(e.url, log);
    for (let pass = 1; pass <= 2; pass++) {
      expect(await drainOutbox(outbox, opts)).toMatchObject({ delivered: 0, dropped: 0, kept: 1 });
      const loud = lines.filter((l) => l.level === 'error');
      expect(loud).toHaveLength(pass);
      expect(loud.at(-1)!.fields).toMatchObject({
        room: 'call-rotated',
        call_id: 'RM_call-rotated:AJ_call-rotated',
        status: 401,
        code: 'invalid_signature',
      });
      now += 3600_000;
    }
    answer = 201; // the edge has the new key (or the clock is right again)
    expect(await drainOutbox(outbox, opts)).toMatchObject({ delivered: 1, kept: 0 });
    expect([...e.accepted]).toEqual(['RM_call-rotated:AJ_call-rotated']);
    expect(waiting(dir)).toEqual([]);
  });

  it('403, 408 and a 404 that is not call_not_found wait in the outbox; 404 call_not_found, a 400 naming the body and a second 413 drop it', async () => {
    const cases: [Answer, 'kept' | 'dropped'][] = [
      [{ status: 403, code: 'forbidden' }, 'kept'],
      [{ status: 408, code: 'timeout' }, 'kept'],
      [{ status: 404, code: 'not_found' }, 'kept'], // no such route: a wrong EDGE_URL
      [404, 'kept'], // a 404 without the edge's error body (a proxy)
      [400, 'kept'], // a 400 without the edge's code is not the edge judging the body
      [{ status: 404, code: 'call_not_found' }, 'dropped'],
      [{ status: 400, code: 'invalid_field' }, 'dropped'],
      [{ status: 400, code: 'malformed_json' }, 'dropped'],
      [{ status: 413, code: 'body_too_large' }, 'dropped'], // the minimal report too
    ];
    for (const [answer, fate] of cases) {
      const dir = freshDir();
      const { lines, log } = logs();
      const outbox = new ReportOutbox(dir, { log });
      await outbox.add(reportFor('call-x'));
      const e = await edge(() => answer);
      const result = await drainOutbox(outbox, drainOptions(e.url, log));
      const label = JSON.stringify(answer);
      expect(result, label).toMatchObject(
        fate === 'kept' ? { dropped: 0, kept: 1 } : { dropped: 1, kept: 0 },
      );
      expect(waiting(dir), label).toHaveLength(fate === 'kept' ? 1 : 0);
      const status = typeof answer === 'number' ? answer : answer.status;
      if (status !== 408)
        expect(
          lines.filter((l) => l.level === 'error' && l.fields.status === status),
          label,
        ).toHaveLength(1);
    }
  });
});

describe("the worker's drain leaves a live job's report to the job", () => {
  it("one due report lands: a live job's write-ahead file, not yet due, is not posted with it", async () => {
    const dir = freshDir();
    const now = 1_000_000;
    const { log } = logs();
    const outbox = new ReportOutbox(dir, { log, now: () => now });
    await outbox.add(reportFor('call-due'), { attempts: 1 }); // handed over by a finished job
    const live = await outbox.add(reportFor('call-live'), { notBefore: now + 30_000 });
    const e = await edge(() => 201);
    const opts = drainOptions(e.url, log);
    expect(await drainOutbox(outbox, opts)).toMatchObject({ delivered: 1, kept: 1 });
    expect(e.got.map((g) => g.room)).toEqual(['call-due']);
    // The job still owns its file: it delivers and removes it, or hands it over, without a race.
    expect(existsSync(live!.path)).toBe(true);
    await live!.retryAt(now, 1);
    await drainOutbox(outbox, opts);
    expect(e.got.map((g) => g.room)).toEqual(['call-due', 'call-live']);
  });
});

describe('outbox odds', () => {
  it("a report fsynced into tmp/ whose rename never happened is recovered and delivered, not deleted; a live writer's is left alone", async () => {
    const dir = freshDir();
    const { lines, log } = logs();
    const outbox = new ReportOutbox(dir, { log });
    outbox.ensure();
    const tmp = (name: string, body: string, ageMs = 0) => {
      const p = join(dir, 'tmp', name);
      writeFileSync(p, body);
      const at = (Date.now() - ageMs) / 1000;
      utimesSync(p, at, at);
    };
    const body = (room: string) => JSON.stringify(reportFor(room));
    const key = (room: string) => keyOf(`RM_${room}:AJ_${room}`);
    // A job on this host that died between its fsync and its rename (its pid is gone).
    tmp(`${key('call-died')}~${host}~999999999~gone~${Date.now()}.tmp`, body('call-died'));
    // One left two hours ago by an agent that named its temp files <key>.<pid>.<random>.
    tmp(`${key('call-older')}.12345.abcd1234`, body('call-older'), 2 * 3600_000);
    // A job that died mid-write: half a report. Nothing to send; kept aside for a look.
    tmp(
      `${key('call-half')}~${host}~999999998~gone~${Date.now()}.tmp`,
      body('call-half').slice(0, 40),
    );
    // A job on this host still writing (its pid is alive).
    tmp(
      `${key('call-writing')}~${host}~${process.ppid}~other~${Date.now()}.tmp`,
      body('call-writing'),
    );
    const e = await edge(() => 201);
    await drainOutbox(outbox, drainOptions(e.url, log));
    expect(e.got.map((g) => g.room).sort()).toEqual(['call-died', 'call-older']);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([expect.stringContaining(key('call-writing'))]);
    expect(quarantined(dir)).toEqual([expect.stringContaining(key('call-half'))]);
    expect(
      lines
        .filter((l) => /recovered/.test(l.msg))
        .map((l) => l.fields.room)
        .sort(),
    ).toEqual(['call-died', 'call-older']);
  });

  it('a file dated in the future (a clock that jumped back) is due, and ages out, from now', async () => {
    const dir = freshDir();
    let now = 2_000_000_000_000;
    const { log } = logs();
    const day = 86400_000;
    // Written while the clock was ten days ahead.
    await new ReportOutbox(dir, { now: () => now + 10 * day }).add(reportFor('call-ahead'));
    // Queued now, but rescheduled while the clock was ten days ahead.
    writeFileSync(
      join(dir, `${now}.1.${now + 10 * day}.${keyOf('RM_call-later:AJ_call-later')}.json`),
      JSON.stringify(reportFor('call-later')),
    );
    const outbox = new ReportOutbox(dir, { log, now: () => now, maxAgeMs: 3600_000 });
    const e = await edge(() => 503);
    await drainOutbox(outbox, drainOptions(e.url, log)); // the edge is down: one probe per pass
    now += 2_000;
    await drainOutbox(outbox, drainOptions(e.url, log));
    expect(e.got.map((g) => g.room).sort()).toEqual(['call-ahead', 'call-later']);
    for (const f of outbox.list()) expect(f.queuedAt).toBeLessThanOrEqual(now);
    now += 3600_000 + 10_000;
    expect((await outbox.enforceBounds()).map((d) => d.room).sort()).toEqual([
      'call-ahead',
      'call-later',
    ]);
  });

  it('EACCES, EIO or EMFILE reading a file leaves it for the next pass, with an error line; it is not deleted', async () => {
    for (const code of ['EACCES', 'EIO', 'EMFILE']) {
      const dir = freshDir();
      const { lines, log } = logs();
      let failing = true;
      const outbox = new ReportOutbox(dir, {
        log,
        io: {
          readFile: async (path) => {
            if (failing) throw Object.assign(new Error(`${code}: fake, read '${path}'`), { code });
            return readFile(path, 'utf8');
          },
        },
      });
      await outbox.add(reportFor('call-io'));
      const e = await edge(() => 201);
      expect(await drainOutbox(outbox, drainOptions(e.url, log)), code).toMatchObject({
        delivered: 0,
        dropped: 0,
        kept: 1,
      });
      expect(e.got, code).toHaveLength(0);
      expect(waiting(dir), code).toHaveLength(1);
      expect(quarantined(dir), code).toEqual([]);
      expect(
        lines.find((l) => l.level === 'error' && l.fields.code === code),
        code,
      ).toBeDefined();
      failing = false;
      expect(await drainOutbox(outbox, drainOptions(e.url, log)), code).toMatchObject({
        delivered: 1,
      });
    }
  });

  it('the outbox directory is fsynced after the rename that makes a report durable', async () => {
    const dir = freshDir();
    const synced: string[][] = [];
    const outbox = new ReportOutbox(dir, {
      io: { syncDir: async (d) => void synced.push([d, ...waiting(d)]) },
    });
    await outbox.add(reportFor('call-sync'));
    expect(synced).toEqual([[dir, outbox.list()[0]!.name]]);
    // And the real one works on a real directory.
    const { lines, log } = logs();
    await new ReportOutbox(freshDir(), { log }).add(reportFor('call-real'));
    expect(lines).toEqual([]);
  });

  it('a file with an outbox name it cannot use is moved to quarantine/ with an error line, and counts against the bounds (dropped first)', async () => {
    const dir = freshDir();
    let now = 1_000_000;
    const { lines, log } = logs();
    const outbox = new ReportOutbox(dir, { log, now: () => now++, maxFiles: 3 });
    await outbox.add(reportFor('call-k1'));
    await outbox.add(reportFor('call-k2'));
    // Outbox names with a damaged key: written by a broken copy, or cut by hand.
    writeFileSync(join(dir, `1000.0.1000.${'a'.repeat(31)}.json`), '{}');
    writeFileSync(join(dir, `1000.1.2000.not-a-key.json`), '{}');
    const e = await edge(() => 503);
    const result = await drainOutbox(outbox, drainOptions(e.url, log));
    expect(readdirSync(dir).filter((n) => !['sending', 'tmp', 'quarantine'].includes(n))).toEqual(
      waiting(dir),
    );
    expect(waiting(dir)).toHaveLength(2); // both reports are still there
    expect(result.dropped).toBe(1); // four files over a bound of three: a quarantined one went
    expect(quarantined(dir)).toHaveLength(1);
    const moved = lines.filter((l) => l.level === 'error' && /quarantine/.test(l.msg));
    expect(moved.map((l) => l.fields.file).sort()).toEqual([
      `1000.0.1000.${'a'.repeat(31)}.json`,
      '1000.1.2000.not-a-key.json',
    ]);
  });

  it("a directory shared with other files (REPORT_OUTBOX_DIR=/data): what is not the outbox's is left alone, never counted or deleted, with one warn line", async () => {
    const dir = freshDir();
    let now = 1_000_000;
    const { lines, log } = logs();
    const old = (path: string) => utimesSync(path, new Date(0), new Date(0));
    // A volume's root: an operator's files, and folders of other programs named like the outbox's.
    const others = [
      'notes.txt',
      'backup.tar',
      '17.json',
      'tmp/upload.tmp',
      'tmp/cache.db',
      'sending/mail.eml',
      'quarantine/photo.jpg',
    ];
    for (const d of ['tmp', 'sending', 'quarantine']) mkdirSync(join(dir, d));
    for (const f of others) {
      writeFileSync(join(dir, f), 'not a report');
      old(join(dir, f));
    }
    const outbox = new ReportOutbox(dir, {
      log,
      now: () => now,
      maxFiles: 2,
      maxAgeMs: 3600_000,
      claimLeaseMs: 1_000,
    });
    await outbox.add(reportFor('call-shared'));
    const e = await edge(() => 503);
    for (let pass = 0; pass < 3; pass++) {
      await drainOutbox(outbox, drainOptions(e.url, log));
      now += 2 * 3600_000; // past every bound: the report itself ages out
    }
    for (const f of others) expect(readFileSync(join(dir, f), 'utf8'), f).toBe('not a report');
    expect(quarantined(dir)).toEqual(['photo.jpg']);
    const warned = lines.filter((l) => /not the outbox's/.test(l.msg));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 'warn', fields: { dir, count: others.length } });
  });
});

describe('where the outbox is', () => {
  it('REPORT_OUTBOX_DIR, else one per edge under the state dir; off or no EDGE_URL: none', () => {
    expect(defaultOutboxDir('https://edge.example.com', { XDG_STATE_HOME: '/state' })).toBe(
      '/state/livekit-voice-calls/outbox/edge.example.com',
    );
    expect(defaultOutboxDir('http://127.0.0.1:8787/', { HOME: '/home/u' })).toBe(
      '/home/u/.local/state/livekit-voice-calls/outbox/127.0.0.1_8787',
    );
    expect(outboxDirFor({ EDGE_URL: 'https://e', REPORT_OUTBOX_DIR: '/data/outbox' })).toBe(
      '/data/outbox',
    );
    expect(outboxDirFor({ EDGE_URL: 'https://e', REPORT_OUTBOX_DIR: 'off' })).toBeUndefined();
    expect(outboxDirFor({ REPORT_OUTBOX_DIR: '/data/outbox' })).toBeUndefined();
  });
});
