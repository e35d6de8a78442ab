import {
  EdgeErrorBody,
  isFinalReportRefusal,
  signBody,
  type CallReport,
  errorMessage,
} from '../../wire-contract/index.ts';
import type { LogFn } from '../log.ts';
import { minimalReport } from './call-report.ts';

/**
 * Delivering a report to the edge (its signed `POST /calls/:room/report`): one post and what it
 * came to (postReport, also the outbox drain's), and a job's delivery with retries up to its
 * deadline (deliverReport). The report itself is built in call-report.ts.
 */

export type PostOptions = {
  edgeUrl: string;
  apiKey: string;
  apiSecret: string;
  fetchImpl?: typeof fetch;
  log?: LogFn;
};

export type DeliveryOptions = PostOptions & {
  /** Stop retrying at this time (the cleanup budget's end). */
  deadline: number;
  /** Aborts delivery at once, a post in flight too (the process's own deadline came closer). */
  signal?: AbortSignal;
};

/**
 * What one post of a report came to. `delivered`: a 2xx (201 accepted, 200 a duplicate: the edge
 * has it either way). `final`: one of FINAL_REPORT_REFUSALS (wire-contract/report-refusals.ts),
 * which resending the same body can never change. `held`: any other refusal (401, 403, a 404
 * without `call_not_found`, …): the edge may take it once its keys, or this clock, are right, so
 * it waits, loudly. `retry`: a network error, a timeout (408 too), a 5xx or a 429: the edge is
 * down or busy.
 */
export type PostOutcome =
  | { kind: 'delivered'; status: number }
  | { kind: 'final'; status: number; code?: string; detail: string }
  | { kind: 'held'; status: number; code?: string; detail: string }
  | { kind: 'retry'; detail: string };

/** The edge refused the report for good (one of FINAL_REPORT_REFUSALS). */
export class ReportRefused extends Error {}
/** Every attempt within the deadline failed with something the edge may get over. */
export class ReportNotDelivered extends Error {}
/** The edge refused the report, not for good (an auth or not-found answer): it waits for later. */
export class ReportHeld extends ReportNotDelivered {}

/**
 * Refusals per `<status> <code>` ('-' without the edge's code) in this process, final or not.
 * Nothing reads it yet: it is kept for the agent's metrics (issue #29) to export. In the worker
 * it counts the outbox's posts, in a job its own.
 */
export const reportRefusals = new Map<string, number>();

/**
 * Posts the report once, signed now (signatures expire: a report kept for later is signed again at
 * each post). A 413 (the edge counts bytes differently, or its limit shrank) is answered at once
 * with the minimal report, so the call is still recorded.
 */
export async function postReport(
  report: CallReport,
  o: PostOptions & { signal?: AbortSignal },
  timeoutMs: number,
): Promise<PostOutcome> {
  const url = `${o.edgeUrl.replace(/\/$/, '')}/calls/${encodeURIComponent(report.room)}/report`;
  const doFetch = o.fetchImpl ?? fetch;
  let body = JSON.stringify(report);
  for (let shrunk = false; ; shrunk = true) {
    let res: Response;
    try {
      res = await doFetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: await signBody(body, o.apiKey, o.apiSecret),
        },
        body,
        signal: o.signal
          ? AbortSignal.any([AbortSignal.timeout(timeoutMs), o.signal])
          : AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      return { kind: 'retry', detail: errorMessage(err) };
    }
    if (res.ok) return { kind: 'delivered', status: res.status };
    if (res.status === 413 && !shrunk) {
      const problem = `the edge refused the full report (413, ${Buffer.byteLength(body)} bytes); sent without transcript, hooks and errors`;
      o.log?.('warn', 'report too large for the edge; sending the minimal report', {
        bytes: Buffer.byteLength(body),
      });
      body = JSON.stringify(minimalReport(report, problem));
      continue;
    }
    if (res.status >= 500 || res.status === 429 || res.status === 408) {
      await res.body?.cancel().catch(() => {});
      return { kind: 'retry', detail: `HTTP ${res.status}` };
    }
    const text = await res.text().catch(() => '');
    const code = errorCode(text);
    const label = `${res.status} ${code ?? '-'}`;
    reportRefusals.set(label, (reportRefusals.get(label) ?? 0) + 1);
    return {
      kind: isFinalReportRefusal(res.status, code) ? 'final' : 'held',
      status: res.status,
      ...(code && { code }),
      detail: `${res.status} ${text.slice(0, 300)}`,
    };
  }
}

/** The code of the edge's error body, if that is what came back. */
function errorCode(text: string): string | undefined {
  try {
    const parsed = EdgeErrorBody.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data.error.code : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Posts the signed report, retrying network errors, timeouts and 5xx/429 with exponential backoff
 * until it lands or the deadline passes (then ReportNotDelivered: the caller keeps it in the
 * outbox). The edge accepts a call id once, so a retry after a lost response is safe. A 413 is
 * answered once with the minimal report. A final refusal throws ReportRefused: retrying the same
 * body cannot fix it. Any other refusal (401, 403, 404 without `call_not_found`) throws ReportHeld
 * at once, with an error line: a key rotation or a clock off by minutes is not over in seconds,
 * and the outbox retries it with a longer backoff.
 */
export async function deliverReport(
  report: CallReport,
  o: DeliveryOptions,
): Promise<{ status: number; attempts: number }> {
  let delay = 250;
  const cut = (attempt: number) =>
    new ReportNotDelivered(
      `report delivery cut after ${attempt} attempts: the process's time is up`,
    );
  for (let attempt = 1; ; attempt++) {
    if (o.signal?.aborted) throw cut(attempt - 1);
    const left = o.deadline - Date.now();
    const outcome = await postReport(report, o, Math.max(250, Math.min(5000, left)));
    if (outcome.kind === 'delivered') return { status: outcome.status, attempts: attempt };
    if (o.signal?.aborted) throw cut(attempt);
    if (outcome.kind === 'final')
      throw new ReportRefused(`edge refused the report: ${outcome.detail}`);
    if (outcome.kind === 'held') {
      o.log?.('error', 'the edge refused the report for now (not a final refusal)', {
        status: outcome.status,
        code: outcome.code ?? null,
        attempt,
      });
      throw new ReportHeld(
        `edge refused the report for now (${outcome.status} ${outcome.code ?? '-'}): ${outcome.detail}`,
      );
    }
    o.log?.('warn', 'report delivery failed, retrying', { attempt, outcome: outcome.detail });
    if (Date.now() + delay >= o.deadline)
      throw new ReportNotDelivered(
        `report not delivered after ${attempt} attempts: ${outcome.detail}`,
      );
    await sleep(delay, o.signal);
    delay = Math.min(delay * 2, 4000);
  }
}

/** Waits `ms`, or less if `signal` aborts first. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
