import type { llm, metrics } from '@livekit/agents';
import {
  callIdFor,
  CallReport,
  EdgeErrorBody,
  END_REASONS,
  isFinalReportRefusal,
  signBody,
  type HookOutcome,
  type Usage,
} from '../../wire-contract/index.ts';
import type { CallSummary } from '../call/lifecycle.ts';
import { callLatency, type TurnLatencies } from './latency.ts';

/** Per-model usage as `session.usage.modelUsage` holds it. */
type ModelUsage = Partial<metrics.ModelUsage>;

export type ReportInputs = {
  summary: CallSummary;
  roomSid: string;
  agentName: string;
  history: llm.ChatItem[];
  usage: ModelUsage[];
  errors: { at: Date; source: string; message: string }[];
  hooks: HookOutcome[];
  /** The call's per-turn latencies; by default the collector the job registered (watchLatency). */
  latency?: TurnLatencies;
};

const MAX_HOOKS_IN_REPORT = 100;
const MAX_TRANSCRIPT_ENTRIES = 5000;

/**
 * The edge refuses a report body over this many bytes with 413 (MAX_REPORT_BYTES in
 * edge/routes/calls.ts; a test holds the two together). A long, text-heavy call gets there.
 */
export const REPORT_MAX_BYTES = 1024 * 1024;
/** What the transcript may not use of the report's bytes: the cut marker and some slack. */
const MARKER_BYTES = 512;

/**
 * The wire report for this call. Never throws: every field is cut to the contract's limits (hooks
 * past the limit are counted in one last entry), and should the full report still not validate,
 * a minimal one (no transcript) that names the problem is sent instead of none.
 */
export function buildReport(i: ReportInputs): CallReport {
  const { summary } = i;
  const base = {
    version: 1 as const,
    call_id: callIdFor(i.roomSid || 'RM_unknown', summary.jobId).slice(0, 256),
    room: summary.room.slice(0, 256),
    room_sid: i.roomSid.slice(0, 128),
    job_id: summary.jobId.slice(0, 128),
    agent_name: i.agentName.slice(0, 128),
    end_reason: summary.reason,
    ended_by: END_REASONS[summary.reason].endedBy,
    started_at: summary.startedAt.toISOString(),
    ended_at: summary.endedAt.toISOString(),
    duration_ms: Math.max(0, summary.endedAt.getTime() - summary.startedAt.getTime()),
  };
  const errors = i.errors.slice(-200).map((e) => ({
    at: e.at.toISOString(),
    source: e.source.slice(0, 200),
    message: e.message.slice(0, 2000),
  }));
  const latency = i.latency ?? callLatency();
  const turns = latency?.turns() ?? [];
  const rest = {
    ...base,
    transcript: [],
    usage: usageFrom(i.usage),
    errors,
    hooks: boundedHooks(i.hooks),
    ...(latency && { turns, latency: latency.summary() }),
  };
  const budget = REPORT_MAX_BYTES - byteLength(rest) - MARKER_BYTES;
  const full = CallReport.safeParse({
    ...rest,
    transcript: budget > 0 ? fitTranscript(transcriptFrom(i.history), budget) : [],
  });
  if (full.success && byteLength(full.data) <= REPORT_MAX_BYTES) return full.data;
  if (full.success)
    return minimalReport(
      full.data,
      `full report over ${REPORT_MAX_BYTES} bytes without its transcript`,
    );
  const issue = full.error.issues[0];
  return minimalReport(
    CallReport.parse({ ...base, transcript: [], usage: usageFrom([]), errors: [], hooks: [] }),
    `full report invalid at ${issue?.path.join('.')}: ${issue?.message}`,
  );
}

/**
 * The report with only what identifies the call, its end and usage, and one error saying why the
 * rest is missing: what is sent when the full one cannot be.
 */
export function minimalReport(report: CallReport, problem: string): CallReport {
  return CallReport.parse({
    ...report,
    transcript: [],
    hooks: [],
    turns: undefined,
    errors: [{ at: report.ended_at, source: 'report', message: problem.slice(0, 2000) }],
  });
}

function byteLength(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

type TranscriptLine = CallReport['transcript'][number];

/**
 * Cuts the transcript to `budget` bytes and the contract's entry count: the start (a quarter of
 * the budget: what the call was about) and the end (how it ended) are kept, and one marker entry
 * in between says how much was cut.
 */
function fitTranscript(lines: TranscriptLine[], budget: number): TranscriptLine[] {
  const sizes = lines.map((l) => byteLength(l) + 1);
  if (
    lines.length <= MAX_TRANSCRIPT_ENTRIES &&
    sizes.reduce((sum, size) => sum + size, 0) <= budget
  )
    return lines;
  const maxKept = MAX_TRANSCRIPT_ENTRIES - 1;
  let used = 0;
  let head = 0;
  while (head < lines.length && head < maxKept / 4 && used + sizes[head]! <= budget / 4)
    used += sizes[head++]!;
  let tail = lines.length;
  while (tail > head && head + lines.length - tail < maxKept && used + sizes[tail - 1]! <= budget)
    used += sizes[--tail]!;
  const cut = tail - head;
  const cutBytes = sizes.slice(head, tail).reduce((sum, size) => sum + size, 0);
  return [
    ...lines.slice(0, head),
    {
      role: 'system',
      text: `[${cut} transcript entries (${cutBytes} bytes) cut to fit the report]`,
      at: lines[head]!.at,
    },
    ...lines.slice(tail),
  ];
}

function boundedHooks(hooks: HookOutcome[]): HookOutcome[] {
  const bounded = hooks.map((h) => ({
    ...h,
    name: h.name.slice(0, 200),
    ...(h.error !== undefined && { error: h.error.slice(0, 2000) }),
  }));
  if (bounded.length <= MAX_HOOKS_IN_REPORT) return bounded;
  const kept = bounded.slice(0, MAX_HOOKS_IN_REPORT - 1);
  const rest = bounded.slice(MAX_HOOKS_IN_REPORT - 1);
  const failed = rest.filter((h) => h.status !== 'ok').length;
  return [
    ...kept,
    {
      name: `${rest.length} more hooks`,
      status: failed ? 'error' : 'ok',
      duration_ms: rest.reduce((sum, h) => sum + h.duration_ms, 0),
      ...(failed && { error: `${failed} of them did not complete` }),
    },
  ];
}

function transcriptFrom(history: llm.ChatItem[]) {
  return history
    .filter(
      (item): item is llm.ChatMessage =>
        item.type === 'message' && (item.role === 'user' || item.role === 'assistant'),
    )
    .map((item) => ({
      role: item.role as 'user' | 'assistant',
      text: (item.textContent ?? '').slice(0, 20_000),
      at: new Date(item.createdAt).toISOString(),
    }))
    .filter((t) => t.text.length > 0);
}

function usageFrom(models: ModelUsage[]): Usage {
  const usage: Usage = {
    llm_prompt_tokens: 0,
    llm_completion_tokens: 0,
    tts_characters: 0,
    stt_seconds: 0,
  };
  for (const m of models) {
    if (m.type === 'llm_usage') {
      usage.llm_prompt_tokens += m.inputTokens ?? 0;
      usage.llm_completion_tokens += m.outputTokens ?? 0;
    } else if (m.type === 'tts_usage') usage.tts_characters += m.charactersCount ?? 0;
    else if (m.type === 'stt_usage') usage.stt_seconds += (m.audioDurationMs ?? 0) / 1000;
  }
  return usage;
}

export type PostOptions = {
  edgeUrl: string;
  apiKey: string;
  apiSecret: string;
  fetchImpl?: typeof fetch;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
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
      return { kind: 'retry', detail: err instanceof Error ? err.message : String(err) };
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
