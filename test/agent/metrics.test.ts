// The worker's Prometheus metrics (agent/process/metrics.ts), served over HTTP as Fly scrapes them,
// from the real cap, the real outbox and job figures written as a job process writes them. The
// image check (`npm run test:image`) scrapes a real worker in its container after a real call.
import { initializeLogger } from '@livekit/agents';
import { mkdtempSync, readdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CallCapacity } from '../../agent/process/capacity.ts';
import { writeJobFigures } from '../../agent/process/job-figures.ts';
import { markJobGreeted } from '../../agent/process/job-starts.ts';
import { serveMetrics, workerMetrics } from '../../agent/process/metrics.ts';
import { ReportOutbox } from '../../agent/report/outbox-store.ts';
import { callReportFor } from '../support/call-report-fixture.ts';
import { freePort } from '../support/processes.ts';
import { metricValue as value } from '../support/prometheus-text.ts';

const servers: Server[] = [];
afterEach(() => servers.splice(0).forEach((s) => s.close()));
beforeAll(() => initializeLogger({ pretty: false, level: 'fatal' }));

const freshDir = () => mkdtempSync(join(tmpdir(), 'lkvc-metrics-'));

/** Starts the metrics server on a free port; answers a scrape function. */
async function served(registry: Parameters<typeof serveMetrics>[0]) {
  const port = await freePort();
  servers.push(await serveMetrics(registry, port));
  return (path = '/metrics') => fetch(`http://127.0.0.1:${port}${path}`);
}

describe('/metrics', () => {
  it('serves the Prometheus text format on GET /metrics, and 404 elsewhere', async () => {
    const scrape = await served(workerMetrics({ idleProcesses: 4 }).registry);
    const res = await scrape();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE voice_agent_calls_running gauge');
    expect(value(text, 'voice_agent_idle_processes_target')).toBe(4);
    expect((await scrape('/')).status).toBe(404);
    expect((await scrape('/worker')).status).toBe(404);
  });

  it('the cap: calls starting until greeted, then running; the cap, dispatches refused at it, and the warm processes', async () => {
    const startsDir = freshDir();
    const capacity = new CallCapacity(2, Date.now, startsDir);
    const jobs: string[] = [];
    await capacity.load({ activeJobs: [] } as never);
    const answer = (id: string) => {
      let accepted = false;
      return capacity
        .request({ id, accept: async () => void (accepted = true), reject: async () => {} })
        .then(() => (accepted && jobs.push(id), accepted));
    };
    expect(await answer('AJ_1')).toBe(true);
    expect(await answer('AJ_2')).toBe(true);
    expect(await answer('AJ_3')).toBe(false);
    let processes = 5;
    const scrape = await served(
      workerMetrics({ capacity, idleProcesses: 1, jobProcesses: () => processes }).registry,
    );
    const calls = (text: string) =>
      ['calls', 'calls_starting', 'calls_running'].map((n) => value(text, `voice_agent_${n}`));
    let text = await (await scrape()).text();
    expect(calls(text)).toEqual([2, 2, 0]);
    expect(value(text, 'voice_agent_call_cap')).toBe(2);
    expect(value(text, 'voice_agent_dispatches_refused_total')).toBe(1);
    // agents-js lists one of them: its process has it, its agent has not spoken yet.
    await capacity.load({ activeJobs: [{ job: { id: 'AJ_1' } }] } as never);
    text = await (await scrape()).text();
    expect(calls(text)).toEqual([2, 2, 0]);
    // Its agent greets the caller, as the job's process marks it (agent/job.ts): it runs.
    markJobGreeted('AJ_1', startsDir);
    text = await (await scrape()).text();
    expect(calls(text)).toEqual([2, 1, 1]);
    // Five job processes, one running a call: four warm.
    expect(value(text, 'voice_agent_warm_processes')).toBe(4);
    processes = 1;
    expect(value(await (await scrape()).text(), 'voice_agent_warm_processes')).toBe(0);
    // AJ_1 ends (no longer listed): its place and its greeting mark go; AJ_2 still starts.
    await capacity.load({ activeJobs: [] } as never);
    expect(calls(await (await scrape()).text())).toEqual([1, 1, 0]);
    expect(readdirSync(startsDir)).toEqual([]);
  });

  it('what job processes write as their calls end is counted once: end reasons, report fates, turn and greeting latency, process start', async () => {
    const figuresDir = freshDir();
    const scrape = await served(workerMetrics({ idleProcesses: 1, figuresDir }).registry);
    writeJobFigures(
      'AJ_a',
      {
        end_reason: 'participant_left',
        report: 'delivered',
        turn_e2e_ms: [640, 1800],
        greeting_ms: 1200,
        process_ready_ms: 700,
      },
      figuresDir,
    );
    writeJobFigures(
      'AJ_b',
      { end_reason: 'agent_end_call', report: 'kept', turn_e2e_ms: [900] },
      figuresDir,
    );
    const text = await (await scrape()).text();
    expect(value(text, 'voice_agent_calls_ended_total{reason="participant_left"}')).toBe(1);
    expect(value(text, 'voice_agent_calls_ended_total{reason="agent_end_call"}')).toBe(1);
    expect(value(text, 'voice_agent_calls_ended_total{reason="drain"}')).toBe(0);
    expect(value(text, 'voice_agent_reports_total{fate="delivered"}')).toBe(1);
    expect(value(text, 'voice_agent_reports_total{fate="kept"}')).toBe(1);
    expect(value(text, 'voice_agent_turn_latency_seconds_count')).toBe(3);
    expect(value(text, 'voice_agent_turn_latency_seconds_bucket{le="1"}')).toBe(2);
    expect(value(text, 'voice_agent_greeting_latency_seconds_count')).toBe(1);
    expect(value(text, 'voice_agent_greeting_latency_seconds_bucket{le="1.5"}')).toBe(1);
    expect(value(text, 'voice_agent_greeting_latency_seconds_bucket{le="1"}')).toBe(0);
    expect(value(text, 'voice_agent_job_process_ready_seconds_count')).toBe(1);
    expect(readdirSync(figuresDir)).toEqual([]);
    const again = await (await scrape()).text();
    expect(value(again, 'voice_agent_calls_ended_total{reason="participant_left"}')).toBe(1);
    expect(value(again, 'voice_agent_turn_latency_seconds_count')).toBe(3);
  });

  it('the outbox: reports waiting, their bytes and the oldest one’s age; the worker’s deliveries and give-ups', async () => {
    let now = 1_000_000;
    const outbox = new ReportOutbox(freshDir(), { now: () => now });
    await outbox.add(callReportFor('call-old'));
    now += 30_000;
    await outbox.add(callReportFor('call-new'));
    now += 15_000;
    const metrics = workerMetrics({ idleProcesses: 1, outbox, now: () => now });
    const scrape = await served(metrics.registry);
    metrics.outboxPass({ delivered: 2, dropped: 1 });
    const text = await (await scrape()).text();
    expect(value(text, 'voice_agent_outbox_reports')).toBe(2);
    expect(value(text, 'voice_agent_outbox_bytes')).toBeGreaterThan(400);
    expect(value(text, 'voice_agent_outbox_oldest_age_seconds')).toBe(45);
    expect(value(text, 'voice_agent_reports_total{fate="delivered_from_outbox"}')).toBe(2);
    expect(value(text, 'voice_agent_reports_total{fate="given_up"}')).toBe(1);
  });
});
