/**
 * What the console knows about calls, without the DOM: the shapes `GET /calls` and
 * `GET /calls/:room` answer (docs/api.md), and the pure functions that turn them into words,
 * a timeline and chart data. The web tests cover this file.
 */
import { END_REASONS, type EndReason } from '../../../wire-contract/end-reasons.ts';
import type { ErrorEntry, TranscriptEntry } from '../../../wire-contract/report.ts';

export type Participant = {
  identity: string;
  kind: string | null;
  issued_at: string | null;
  joined_at: string | null;
  left_at: string | null;
  disconnect_reason: string | null;
};
export type Hook = { name: string; status: string; duration_ms: number; error?: string };
export type Turn = {
  at: string;
  eou_delay_ms?: number;
  transcription_delay_ms?: number;
  llm_ttft_ms?: number;
  tts_ttfb_ms?: number;
  e2e_ms?: number;
  interrupted?: boolean;
};
export type Spread = { p50: number; p95: number };
export type Report = {
  call_id: string;
  transcript: TranscriptEntry[];
  usage: Record<string, number>;
  errors: ErrorEntry[];
  hooks: Hook[];
  end_reason: string;
  turns?: Turn[];
  latency?: { turns: number } & Partial<Record<LatencyMeasure, Spread>>;
};
/** Who asked for an API end (`POST /calls/:room/end`), and so wrote its note. */
export type EndCaller = {
  /** `admin`, `app`, `user` or `participant` (a newer edge may add kinds). */
  kind: string;
  identity: string | null;
};
export type Call = {
  room: string;
  status: 'open' | 'ended' | string;
  agent_name: string | null;
  end_mode: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  duration_seconds: number | null;
  end_reason: string | null;
  ended_by: string | null;
  end_source: string | null;
  end_note: string | null;
  /** Absent from edges before issue #25; null when no API caller asked for the end. */
  end_caller?: EndCaller | null;
  agent_removed_at: string | null;
  revival_attempts: number;
  last_revival_at: string | null;
  participants?: Participant[];
  report?: Report | null;
};
export type CallPage = { calls: Call[]; next_cursor: string | null };
export type StatusFilter = '' | 'open' | 'ended' | 'not_joined';

export const LATENCY_MEASURES = [
  ['eou_delay_ms', 'End of utterance'],
  ['transcription_delay_ms', 'Transcription'],
  ['llm_ttft_ms', 'LLM first token'],
  ['tts_ttfb_ms', 'TTS first byte'],
  ['e2e_ms', 'End to end'],
] as const;
export type LatencyMeasure = (typeof LATENCY_MEASURES)[number][0];

/** The end reason in the words the call page shows a caller (the contract table). */
export function endReasonInWords(reason: string | null | undefined): string {
  if (!reason) return '';
  return END_REASONS[reason as EndReason]?.clientMessage ?? reason;
}

export function durationInWords(seconds: number | null | undefined): string {
  if (seconds == null) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}:${String(s % 60).padStart(2, '0')}`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export function statusInWords(call: Pick<Call, 'status' | 'end_reason'>): string {
  if (call.status === 'open') return 'open';
  return call.end_reason === 'not_joined' ? 'never joined' : call.status;
}

/** A time in the operator's locale, with the date only when it is not today. */
export function timeInWords(iso: string | null | undefined, now = new Date()): string {
  if (!iso) return '—';
  const d = new Date(iso);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return d.toDateString() === now.toDateString()
    ? time
    : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

/** An API caller in words: a caller's note must never read as an operator's. */
export function endCallerInWords(caller: EndCaller): string {
  if (caller.kind === 'admin') return 'an operator (admin key)';
  if (caller.kind === 'app') return 'the backend (app key)';
  return `${caller.kind} ${caller.identity ?? '(no identity)'}`;
}

/** Who ended the call: the API caller when one asked, else the ledger's `ended_by` and source. */
export function endedByInWords(
  call: Pick<Call, 'ended_by' | 'end_source' | 'end_caller'>,
): string | null {
  if (call.end_caller) return `${endCallerInWords(call.end_caller)}, through the API`;
  return call.ended_by && `${call.ended_by}${call.end_source ? ` via ${call.end_source}` : ''}`;
}

/**
 * The end note with its author: an API caller's; with no caller recorded, the edge's own (or an
 * API note from before callers were recorded).
 */
export function endNoteInWords(call: Pick<Call, 'end_note' | 'end_caller'>): string {
  if (!call.end_note) return '';
  return call.end_caller
    ? `note from ${endCallerInWords(call.end_caller)}: ${call.end_note}`
    : `note: ${call.end_note}`;
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

export type TimelineEvent = { at: string; what: string; kind: string };

/** One call's life in time order: token, joins and leaves, the end, revivals, the report. */
export function timeline(call: Call): TimelineEvent[] {
  const events: TimelineEvent[] = [{ at: call.created_at, what: 'Call created', kind: 'created' }];
  for (const p of call.participants ?? []) {
    const who = p.kind === 'AGENT' ? `Assistant (${p.identity})` : p.identity;
    if (p.issued_at)
      events.push({ at: p.issued_at, what: `Token issued to ${who}`, kind: 'token' });
    if (p.joined_at) events.push({ at: p.joined_at, what: `${who} joined`, kind: 'joined' });
    if (p.left_at)
      events.push({
        at: p.left_at,
        what: `${who} left${p.disconnect_reason ? ` (${p.disconnect_reason})` : ''}`,
        kind: 'left',
      });
  }
  if (call.started_at) events.push({ at: call.started_at, what: 'Room started', kind: 'started' });
  if (call.agent_removed_at)
    events.push({ at: call.agent_removed_at, what: 'Assistant removed', kind: 'removed' });
  if (call.ended_at && call.status === 'ended')
    events.push({
      at: call.ended_at,
      what: `Ended: ${endReasonInWords(call.end_reason)} (${call.end_reason ?? 'no reason'}${
        call.end_caller
          ? `, by ${endCallerInWords(call.end_caller)}`
          : call.ended_by
            ? `, by ${call.ended_by}`
            : ''
      }${call.end_note ? `; ${endNoteInWords(call)}` : ''})`,
      kind: 'ended',
    });
  if (call.last_revival_at)
    events.push({
      at: call.last_revival_at,
      what: `Rejoined after the end, closed at once (${call.revival_attempts} in all)`,
      kind: 'revival',
    });
  // LiveKit's webhook times have whole seconds: within one second, the order a call lives in.
  const rank = ['created', 'token', 'started', 'joined', 'removed', 'left', 'ended', 'revival'];
  const second = (e: TimelineEvent) => Math.floor(Date.parse(e.at) / 1000);
  const sorted = events.sort(
    (a, b) =>
      second(a) - second(b) ||
      rank.indexOf(a.kind) - rank.indexOf(b.kind) ||
      Date.parse(a.at) - Date.parse(b.at),
  );
  if (call.report) {
    const r = call.report;
    const failed = r.hooks.filter((h) => h.status !== 'ok').length;
    sorted.push({
      at: call.ended_at ?? sorted.at(-1)!.at,
      what: `Report received: ${plural(r.transcript.length, 'transcript line')}, ${plural(r.hooks.length, 'hook')}${
        failed ? ` (${failed} not ok)` : ''
      }, ${plural(r.errors.length, 'error')}`,
      kind: 'report',
    });
  }
  return sorted;
}

/** Calls per hour over the window the console has loaded, oldest hour first, empty hours kept. */
export function callsPerHour(
  calls: readonly Pick<Call, 'created_at'>[],
): { hour: number; count: number }[] {
  const HOUR = 3_600_000;
  const hours = calls.map((c) => Math.floor(Date.parse(c.created_at) / HOUR));
  if (!hours.length) return [];
  const first = Math.min(...hours);
  const last = Math.max(...hours);
  // A long window is cut to its last 48 hours: the picture is of recent traffic.
  const from = Math.max(first, last - 47);
  const bins = Array.from({ length: last - from + 1 }, (_, i) => ({
    hour: (from + i) * HOUR,
    count: 0,
  }));
  for (const h of hours) if (h >= from) bins[h - from]!.count++;
  return bins;
}

/** How the loaded calls ended, most frequent first; open calls count as "open". */
export function endReasonCounts(
  calls: readonly Pick<Call, 'status' | 'end_reason'>[],
): { reason: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const c of calls) {
    const key = c.status === 'open' ? 'open' : (c.end_reason ?? 'unknown');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts]
    .map(([reason, count]) => ({ reason, count }))
    .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
}

/** New and changed rows from a refreshed first page, over what is loaded: newest first, no doubles. */
export function mergeCalls(loaded: readonly Call[], fresh: readonly Call[]): Call[] {
  const byRoom = new Map(fresh.map((c) => [c.room, c]));
  const kept = loaded.filter((c) => !byRoom.has(c.room));
  return [...fresh, ...kept].sort(
    (a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.room.localeCompare(a.room),
  );
}

/** An open call, or one that ended in the last two minutes and whose report is not in yet. */
export function awaitsChange(
  call: Pick<Call, 'status' | 'report' | 'ended_at'>,
  now: number,
): boolean {
  return (
    call.status === 'open' ||
    (!call.report && call.ended_at != null && now - Date.parse(call.ended_at) < 120_000)
  );
}

/** What the console says when the edge refuses or fails. */
export function refusalInWords(status: number, code?: string, message?: string): string {
  if (status === 401) return 'That key was not accepted. Check the admin key and sign in again.';
  if (status === 403)
    return 'That key may not read the ledger: the console needs the admin key (ADMIN_API_KEY).';
  if (status === 404 && code === 'call_not_found') return 'There is no such call in the ledger.';
  if (status === 0) return 'Could not reach the edge. Check your connection and try again.';
  if (status === 503 && code === 'misconfigured')
    return `The edge is misconfigured: ${message ?? 'see its logs'}.`;
  return `The edge answered ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}.`;
}
