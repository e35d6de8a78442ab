import { initializeLogger } from '@livekit/agents';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CallCapacity,
  defaultCallCap,
  defaultIdleProcesses,
} from '../../agent/process/capacity.ts';
import { markJobGreeted, markJobStarted } from '../../agent/process/job-starts.ts';

const GiB = 2 ** 30;

/** A job request as agents-js hands it to requestFunc; records the answer. */
function request(id: string) {
  const r = {
    id,
    answer: undefined as 'accepted' | 'rejected' | undefined,
    accept: async () => void (r.answer = 'accepted'),
    reject: async () => void (r.answer = 'rejected'),
  };
  return r;
}

/** The worker as the load function sees it: the jobs its processes run. */
function worker(ids: string[]) {
  return { activeJobs: ids.map((id) => ({ job: { id } })) } as never;
}

/** The worker whose job list changes as its processes start and end jobs, as agents-js's does. */
function liveWorker() {
  const ids: string[] = [];
  return {
    ids,
    worker: {
      get activeJobs() {
        return ids.map((id) => ({ job: { id } }));
      },
    } as never,
  };
}

/** What a job's own process does as it starts its job (agent/job.ts's entry). */
const startedInItsProcess = (id: string, dir: string) => markJobStarted(id, dir);

describe('the call cap', () => {
  beforeAll(() => initializeLogger({ pretty: false, level: 'fatal' }));

  it.each([
    [2, 24 * GiB, 10],
    [2, 2 * GiB, 5],
    [8, 64 * GiB, 40],
    [1, 0.25 * GiB, 1],
  ])(
    'defaults to 5 calls per core, bounded by memory: %i cores, %d bytes → %i',
    (cores, mem, cap) => expect(defaultCallCap(cores, mem)).toBe(cap),
  );

  it.each([
    [10, 2, 4, 'two per core (bench:capacity, the pool in a burst)'],
    [5, 1, 2, 'two per core on one core'],
    [40, 8, 4, 'never more than 4'],
    [1, 8, 1, 'never more than the cap'],
  ])('keeps job processes warm: cap %i, %i cores → %i (%s)', (cap, cores, idle) =>
    expect(defaultIdleProcesses(cap, cores)).toBe(idle),
  );

  it('is hard: a burst of requests between two load reports gets exactly the cap', async () => {
    const capacity = new CallCapacity(3);
    const burst = ['a', 'b', 'c', 'd', 'e'].map(request);
    await Promise.all(burst.map((r) => capacity.request(r)));
    expect(burst.map((r) => r.answer)).toEqual([
      'accepted',
      'accepted',
      'accepted',
      'rejected',
      'rejected',
    ]);
    expect(await capacity.load(worker([]))).toBe(1);
  });

  it('reaches LiveKit’s target load exactly at the cap (the server sends no job at or past it), never before', async () => {
    const capacity = new CallCapacity(4, Date.now, undefined, 0.7);
    const loads = [];
    for (const ids of [[], ['a'], ['a', 'b'], ['a', 'b', 'c'], ['a', 'b', 'c', 'd']])
      loads.push(await capacity.load(worker(ids)));
    expect(loads.map((l) => Math.round(l * 1000) / 1000)).toEqual([0, 0.175, 0.35, 0.525, 0.7]);
    expect(loads.slice(0, 4).every((l) => l < capacity.targetLoad)).toBe(true);
    expect(loads[4]).toBeGreaterThanOrEqual(capacity.targetLoad);
  });

  it('counts an accepted call once while it runs, and frees its place when it ends', async () => {
    let now = 0;
    const capacity = new CallCapacity(2, () => now);
    await capacity.request(request('a'));
    await capacity.request(request('b'));
    expect(await capacity.load(worker(['a']))).toBe(1); // a runs, b is about to
    expect(await capacity.load(worker(['a', 'b']))).toBe(1);
    expect(await capacity.load(worker(['b']))).toBe(0.5); // a ended
    const next = request('c');
    await capacity.request(next);
    expect(next.answer).toBe('accepted');
    now += 60_000; // c never started (its assignment timed out): its place comes back
    expect(await capacity.load(worker(['b']))).toBe(0.5);
  });

  it('short calls that started and ended between two looks at the worker free their places: at the cap, the next call is accepted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'call-capacity-'));
    const capacity = new CallCapacity(2, Date.now, dir);
    const { ids, worker: w } = liveWorker();
    await capacity.load(w); // agents-js hands the worker over with its first load report
    // a: its job was listed and gone again before anything looked; b: never seen while it ran.
    const a = request('a');
    await capacity.request(a);
    ids.push('a');
    startedInItsProcess('a', dir);
    ids.splice(ids.indexOf('a'), 1);
    const b = request('b');
    await capacity.request(b);
    startedInItsProcess('b', dir);
    expect([a.answer, b.answer]).toEqual(['accepted', 'accepted']);
    // Both calls are over, well inside agents-js's 2.5 s between load reports.
    const next = request('c');
    await capacity.request(next);
    expect(next.answer).toBe('accepted');
    expect(await capacity.load(w)).toBe(0.5); // c, accepted and about to run
  });

  it('leaves no start marks behind, whether the worker saw the call listed or not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'call-capacity-'));
    const capacity = new CallCapacity(2, Date.now, dir);
    const { ids, worker: w } = liveWorker();
    await capacity.request(request('seen'));
    ids.push('seen');
    expect(await capacity.load(w)).toBe(0.5);
    startedInItsProcess('seen', dir); // its process marks it after the worker saw it listed
    ids.length = 0;
    await capacity.request(request('unseen'));
    startedInItsProcess('unseen', dir);
    expect(await capacity.load(w)).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('holds in a burst before agents-js first reports load (a worker just started): started calls still count', async () => {
    // agents-js hands the cap its worker only at its first load report, 2.5 s after registering:
    // until then the cap cannot see which started calls are still running, so none is freed.
    const dir = mkdtempSync(join(tmpdir(), 'call-capacity-'));
    const capacity = new CallCapacity(2, Date.now, dir);
    const burst = ['a', 'b', 'c'].map(request);
    for (const r of burst) {
      await capacity.request(r);
      if (r.answer === 'accepted') startedInItsProcess(r.id, dir);
    }
    expect(burst.map((r) => r.answer)).toEqual(['accepted', 'accepted', 'rejected']);
    // The first report: a runs, b already ended (its process marked it, the worker lists it not).
    const { ids, worker: w } = liveWorker();
    ids.push('a');
    expect(await capacity.load(w)).toBe(0.5);
    expect(readdirSync(dir)).toEqual(['a']); // b's place freed, a's mark kept while it runs
    ids.length = 0;
    expect(await capacity.load(w)).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('leaves no marks behind for a call listed only after its grace (a late assignment)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'call-capacity-'));
    let now = 0;
    const capacity = new CallCapacity(2, () => now, dir);
    const { ids, worker: w } = liveWorker();
    await capacity.load(w);
    await capacity.request(request('late'));
    now = 60_000; // its grace is over: it no longer counts as starting
    expect(await capacity.load(w)).toBe(0);
    ids.push('late'); // then agents-js lists it after all, its process starts it, its agent greets
    startedInItsProcess('late', dir);
    markJobGreeted('late', dir);
    expect(await capacity.load(w)).toBe(0.5);
    ids.length = 0; // it ends
    expect(await capacity.load(w)).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses while the worker runs the cap, whatever was accepted before', async () => {
    const capacity = new CallCapacity(2);
    await capacity.load(worker(['x', 'y']));
    const r = request('z');
    await capacity.request(r);
    expect(r.answer).toBe('rejected');
  });
});
