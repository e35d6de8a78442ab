import type { CallEnd } from '../ledger/call-ends.ts';
import type { CallRow, EndSource } from '../ledger/calls.ts';

/**
 * What a call's deadlines owe it now, from its ledger row:
 * - `forget`: nothing, ever again (no such call, or it ended);
 * - `wait`: nothing before `until`;
 * - `end_overdue`: it was live past its deadline plus grace (its agent died, say): delete its
 *   room and close it as `max_duration`;
 * - `close_if_unused`: its last token expired (plus grace) and its room was never seen to start:
 *   unless LiveKit has the room after all, close it as `not_joined`.
 * The same rules the cron's sweeps apply to many calls at once (ledger/sweeps.ts, SWEEPS).
 */
export type DeadlineStep =
  | { do: 'forget' }
  | { do: 'wait'; until: number }
  | { do: 'end_overdue' }
  | { do: 'close_if_unused' };

export function deadlineStep(
  row: Pick<CallRow, 'status' | 'started_at' | 'join_by' | 'deadline_at'> | null,
  now: number,
  graceMs: number,
): DeadlineStep {
  if (!row || row.status !== 'open') return { do: 'forget' };
  // A call that was live: it started, or was opened for a room that existed (a dispatch).
  const live = row.started_at !== null || row.join_by === null;
  const due = (live ? row.deadline_at : row.join_by!) + graceMs;
  if (now < due) return { do: 'wait', until: due };
  return live ? { do: 'end_overdue' } : { do: 'close_if_unused' };
}

/** The end of a call that outlived its deadline: authoritative, the room having been deleted. */
export const overdueEnd = (at: number, source: EndSource): CallEnd => ({
  reason: 'max_duration',
  endedBy: 'system',
  source,
  at,
  note: 'edge backstop',
  strong: true,
});

/** The end of a call whose tokens all expired unused: inferred, a later report may replace it. */
export const unusedEnd = (at: number, source: EndSource): CallEnd => ({
  reason: 'not_joined',
  endedBy: 'system',
  source,
  at,
  note: 'token expired unused',
  strong: false,
});

/** How long an ended call and its report are kept (RETENTION_CALL_DAYS, RETENTION_REPORT_DAYS). */
export type Keep = { graceMs: number; callsMs: number; reportsMs: number };

/**
 * When a call's object must wake next (epoch ms; none: never): an open call at its deadline (or
 * its tokens' join-by, plus grace), and at its join-by if it started and the archive does not
 * know yet (the cap counts it from then by its start); an ended call when its report or itself
 * is past retention.
 */
export function nextWake(
  row: CallRow,
  archived: Pick<CallRow, 'started_at'> | undefined,
  oldestReportAt: number | undefined,
  now: number,
  keep: Keep,
): number | undefined {
  if (row.status === 'ended') {
    const callGoes = (row.ended_at ?? now) + keep.callsMs;
    return oldestReportAt === undefined
      ? callGoes
      : Math.min(callGoes, oldestReportAt + keep.reportsMs);
  }
  const step = deadlineStep(row, now, keep.graceMs);
  const due = step.do === 'wait' ? step.until : now;
  const tellStart =
    row.started_at !== null && row.join_by !== null && archived?.started_at == null
      ? row.join_by
      : Infinity;
  return Math.min(due, tellStart);
}
