import type { llm, metrics } from '@livekit/agents';
import {
  callIdFor,
  CallReport,
  END_REASONS,
  signBody,
  type HookOutcome,
  type Usage,
} from '../wire-contract/index.ts';
import type { CallSummary } from './call-lifecycle.ts';

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
};

const MAX_HOOKS_IN_REPORT = 100;

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
  const full = CallReport.safeParse({
    ...base,
    transcript: transcriptFrom(i.history),
    usage: usageFrom(i.usage),
    errors,
    hooks: boundedHooks(i.hooks),
  });
  if (full.success) return full.data;
  const problem = full.error.issues[0];
  return CallReport.parse({
    ...base,
    transcript: [],
    usage: { llm_prompt_tokens: 0, llm_completion_tokens: 0, tts_characters: 0, stt_seconds: 0 },
    errors: [
      {
        at: base.ended_at,
        source: 'report',
        message: `full report invalid at ${problem?.path.join('.')}: ${problem?.message}`.slice(
          0,
          2000,
        ),
      },
    ],
    hooks: [],
  });
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
    .filter((t) => t.text.length > 0)
    .slice(-5000);
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

export type DeliveryOptions = {
  edgeUrl: string;
  apiKey: string;
  apiSecret: string;
  /** Stop retrying at this time (the cleanup budget's end). */
  deadline: number;
  fetchImpl?: typeof fetch;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
};

/**
 * Posts the signed report, retrying network errors and 5xx/429 with exponential backoff until it
 * lands or the deadline passes. The edge accepts a call id once, so a retry after a lost response
 * is safe. A 4xx other than 429 is final: retrying the same body cannot fix it.
 */
export async function deliverReport(
  report: CallReport,
  o: DeliveryOptions,
): Promise<{ status: number; attempts: number }> {
  const body = JSON.stringify(report);
  const url = `${o.edgeUrl.replace(/\/$/, '')}/calls/${encodeURIComponent(report.room)}/report`;
  const doFetch = o.fetchImpl ?? fetch;
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    const left = o.deadline - Date.now();
    let outcome: string;
    try {
      const res = await doFetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: await signBody(body, o.apiKey, o.apiSecret),
        },
        body,
        signal: AbortSignal.timeout(Math.max(250, Math.min(5000, left))),
      });
      if (res.ok) return { status: res.status, attempts: attempt };
      if (res.status < 500 && res.status !== 429)
        throw new Error(
          `edge refused the report: ${res.status} ${(await res.text()).slice(0, 300)}`,
        );
      outcome = `HTTP ${res.status}`;
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('edge refused')) throw err;
      outcome = err instanceof Error ? err.message : String(err);
    }
    o.log?.('warn', 'report delivery failed, retrying', { attempt, outcome });
    if (Date.now() + delay >= o.deadline)
      throw new Error(`report not delivered after ${attempt} attempts: ${outcome}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 4000);
  }
}
