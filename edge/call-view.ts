import type { CallReport } from '../wire-contract/index.ts';
import type { CallRow, ParticipantRow } from './ledger/calls.ts';

const iso = (ms: number | null) => (ms == null ? null : new Date(ms).toISOString());

/** The client-facing view of a call: what `GET /calls/:room` and the end-call endpoint answer. */
export function presentCall(
  row: CallRow,
  participants?: ParticipantRow[],
  report?: CallReport | null,
) {
  const end = row.status === 'ended' ? (row.ended_at ?? row.created_at) : null;
  return {
    room: row.room,
    room_sid: row.room_sid,
    status: row.status,
    agent_name: row.agent_name,
    end_mode: row.end_mode,
    created_at: iso(row.created_at),
    deadline_at: iso(row.deadline_at),
    started_at: iso(row.started_at),
    ended_at: iso(row.ended_at),
    duration_seconds:
      row.started_at != null && end != null ? Math.max(0, (end - row.started_at) / 1000) : null,
    end_reason: row.end_reason,
    ended_by: row.ended_by,
    end_source: row.end_source,
    end_note: row.end_note,
    agent_removed_at: iso(row.agent_removed_at),
    // Joins with a still-valid token after the end, each closed at once: an operator's signal.
    revival_attempts: row.revival_attempts,
    last_revival_at: iso(row.last_revival_at),
    ...(participants && {
      participants: participants.map((p) => ({
        identity: p.identity,
        kind: p.kind,
        issued_at: iso(p.issued_at),
        joined_at: iso(p.joined_at),
        left_at: iso(p.left_at),
        disconnect_reason: p.disconnect_reason,
      })),
    }),
    ...(report !== undefined && {
      report: report && {
        call_id: report.call_id,
        transcript: report.transcript,
        usage: report.usage,
        errors: report.errors,
        hooks: report.hooks,
        end_reason: report.end_reason,
        // Per-turn latency (agents-js metrics) and its p50/p95; absent from older agents' reports.
        ...(report.latency && { latency: report.latency }),
        ...(report.turns && { turns: report.turns }),
      },
    }),
  };
}
