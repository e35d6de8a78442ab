import { END_REASONS, type CallReport } from '../../wire-contract/index.ts';
import type { CallRow, ParticipantRow } from '../ledger/calls.ts';

const iso = (ms: number | null) => (ms == null ? null : new Date(ms).toISOString());

function durationSeconds(row: CallRow): number | null {
  const end = row.status === 'ended' ? (row.ended_at ?? row.created_at) : null;
  return row.started_at != null && end != null ? Math.max(0, (end - row.started_at) / 1000) : null;
}

/**
 * The caller view (a participant's own LiveKit token, a signed-in user, the app key): what a
 * client shows about its own call, its status and its end in the contract's words, and its
 * times. Not the other participants, the report (transcript, errors, hook messages, usage), the
 * end note, nor the agent's settings (agent, end mode, deadline: sealed in the token, so not read
 * back here either). `caller` is the asker's own participant row, when it has one.
 */
export function presentCallToCaller(row: CallRow, own?: ParticipantRow) {
  return {
    room: row.room,
    status: row.status,
    created_at: iso(row.created_at),
    started_at: iso(row.started_at),
    ended_at: iso(row.ended_at),
    duration_seconds: durationSeconds(row),
    end_reason: row.end_reason,
    end_message: row.end_reason ? (END_REASONS[row.end_reason]?.clientMessage ?? null) : null,
    ended_by: row.ended_by,
    ...(own && {
      caller: {
        identity: own.identity,
        issued_at: iso(own.issued_at),
        joined_at: iso(own.joined_at),
        left_at: iso(own.left_at),
      },
    }),
  };
}

/**
 * The operator view (the admin key): everything the ledger holds about a call, for `GET /calls`,
 * `GET /calls/:room` and the end-call endpoint's answer. Report errors and hook messages can hold
 * provider URLs and other internal detail, so no other credential gets it.
 */
export function presentCall(
  row: CallRow,
  participants?: ParticipantRow[],
  report?: CallReport | null,
) {
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
    duration_seconds: durationSeconds(row),
    end_reason: row.end_reason,
    ended_by: row.ended_by,
    end_source: row.end_source,
    end_note: row.end_note,
    // Who asked for an API end, and so wrote its note: a caller's words are not an operator's.
    end_caller: row.end_caller_kind
      ? { kind: row.end_caller_kind, identity: row.end_caller_identity }
      : null,
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
