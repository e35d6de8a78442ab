import type { CallRow } from './calls.ts';

/**
 * What a call object writes back to the archive (D1): the columns its live state changes, and the
 * settings the call ran with. The rest are the archive's own: what `/token` and a dispatch record
 * (who opened the call and when, its tokens' join-by, its dispatch), and the cron's claims.
 */
export const ARCHIVED_COLUMNS = [
  // The settings the call runs with: those of the token whose join created its room (its
  // dispatch is the agent's, and its facts are the object's), which, for a room several tokens
  // were issued for, need not be the first token's that the archive recorded.
  'agent_name',
  'end_mode',
  'max_duration_seconds',
  'room_sid',
  'started_at',
  'deadline_at',
  'status',
  'ended_at',
  'end_reason',
  'ended_by',
  'end_source',
  'end_strength',
  'end_note',
  'end_caller_kind',
  'end_caller_identity',
  'agent_removed_at',
  'agent_job_id',
  'agent_admitted_at',
  'revival_attempts',
  'last_revival_at',
  'last_revival_sid',
] as const satisfies readonly (keyof CallRow)[];

export type ArchivedCall = Pick<CallRow, (typeof ARCHIVED_COLUMNS)[number]>;

export function archivedPart(row: CallRow): ArchivedCall {
  return Object.fromEntries(ARCHIVED_COLUMNS.map((k) => [k, row[k]])) as ArchivedCall;
}

/**
 * One statement: the call's row in the archive takes its live state, and any cron claim on it
 * ends. An end in the archive is never reopened (a Worker of the previous version may have
 * written it during a deploy: the call's object then learns it on its next import).
 */
export async function archiveCall(db: D1Database, room: string, call: ArchivedCall): Promise<void> {
  await db
    .prepare(
      `UPDATE calls SET ${ARCHIVED_COLUMNS.map((k, i) => `${k} = ?${i + 2}`).join(', ')},
         sweep_until = NULL WHERE room = ?1 AND NOT (status = 'ended' AND ?${ARCHIVED_COLUMNS.indexOf('status') + 2} = 'open')`,
    )
    .bind(room, ...ARCHIVED_COLUMNS.map((k) => call[k]))
    .run();
}
