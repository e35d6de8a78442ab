import type { llm, metrics } from '@livekit/agents';
import {
  callIdFor,
  CallReport,
  END_REASONS,
  MAX_REPORT_BYTES,
  type ErrorEntry,
  type HookOutcome,
  type Usage,
} from '../../wire-contract/index.ts';
import type { CallSummary } from '../call/lifecycle.ts';
import { callLatency, type TurnLatencies } from './latency.ts';

/** Per-model usage as `session.usage.modelUsage` holds it. */
type ModelUsage = Partial<metrics.ModelUsage>;

/** Something that went wrong during the call as the job records it: the report's entry, dated. */
export type CallError = Omit<ErrorEntry, 'at'> & { at: Date };

export type ReportInputs = {
  summary: CallSummary;
  roomSid: string;
  agentName: string;
  history: llm.ChatItem[];
  usage: ModelUsage[];
  errors: CallError[];
  hooks: HookOutcome[];
  /** The call's per-turn latencies; by default the collector the job registered (watchLatency). */
  latency?: TurnLatencies;
};

const MAX_HOOKS_IN_REPORT = 100;
const MAX_TRANSCRIPT_ENTRIES = 5000;

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
  const budget = MAX_REPORT_BYTES - byteLength(rest) - MARKER_BYTES;
  const full = CallReport.safeParse({
    ...rest,
    transcript: budget > 0 ? fitTranscript(transcriptFrom(i.history), budget) : [],
  });
  if (full.success && byteLength(full.data) <= MAX_REPORT_BYTES) return full.data;
  if (full.success)
    return minimalReport(
      full.data,
      `full report over ${MAX_REPORT_BYTES} bytes without its transcript`,
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
