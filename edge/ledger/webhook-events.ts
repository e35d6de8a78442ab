import type { WebhookEvent } from 'livekit-server-sdk';
import { latestCreationMs, revivalColumnsSql, revivalSql, sawRevivalSql } from './revivals.ts';

/** Disconnect reasons that mean an agent left on purpose; anything else means it vanished. */
const CLEAN_DISCONNECTS = [
  'CLIENT_INITIATED',
  'ROOM_DELETED',
  'ROOM_CLOSED',
  'PARTICIPANT_REMOVED',
  'SERVER_SHUTDOWN',
];

/** The id a webhook is known by in logs. */
export function webhookEventId(event: WebhookEvent): string {
  return event.id || `${event.event}:${event.room?.name ?? ''}:${event.createdAt}`;
}

/**
 * `applied`: the ledger holds what the event says (whether or not it held it already);
 * `untracked`: a room the edge never issued a token for; `revival`: a room LiveKit recreated for
 * an ended call (the caller must close it); `ignored`: an event the ledger does not use (tracks,
 * egress, ingress), which never reaches the ledger.
 */
export type WebhookOutcome = 'applied' | 'untracked' | 'revival' | 'ignored';

/** What the event came to. */
export type AppliedWebhook = { outcome: WebhookOutcome };

// Statement parameters, the same in every statement below.
// ?1 room, ?2 room sid (NULL when unknown), ?3 the latest the room may have been created (ms,
// NULL when unknown), ?4 when the event happened (ms), ?5 now (ms), ?6 identity, ?7 kind,
// ?8 disconnect reason.
const REVIVAL = revivalSql('?2', '?3');
const REVIVAL_COLUMNS = revivalColumnsSql(REVIVAL, '?2', '?5');
const SAW_REVIVAL = sawRevivalSql('?2', '?5');

/** When only LiveKit speaks, the end is named from who left how; the agent's report may replace it. */
const INFERRED_END_REASON = `(CASE
  WHEN EXISTS (SELECT 1 FROM call_participants p WHERE p.room = ?1 AND p.left_at IS NOT NULL
    AND p.kind = 'AGENT' AND COALESCE(p.disconnect_reason, '') NOT IN (${CLEAN_DISCONNECTS.map((r) => `'${r}'`).join(', ')}))
    THEN 'error'
  WHEN EXISTS (SELECT 1 FROM call_participants p WHERE p.room = ?1 AND p.left_at IS NOT NULL
    AND p.kind <> 'AGENT' AND p.disconnect_reason = 'CLIENT_INITIATED')
    THEN 'participant_left'
  ELSE 'room_deleted' END)`;

/** One UPDATE of the call: the event's effect unless the room is a revival, then the revival. */
function callUpdate(effect: string): string {
  return `UPDATE calls SET ${effect}, ${REVIVAL_COLUMNS} WHERE room = ?1 RETURNING ${SAW_REVIVAL} AS revival`;
}

// The real start tightens the backstop deadline from "issued + TTL + max" to "started + max".
const ROOM_STARTED = callUpdate(`
  room_sid = IIF(${REVIVAL}, room_sid, COALESCE(room_sid, ?2)),
  started_at = IIF(${REVIVAL}, started_at, MIN(COALESCE(started_at, ?4), ?4)),
  deadline_at = IIF(${REVIVAL}, deadline_at, MIN(deadline_at, ?4 + max_duration_seconds * 1000))`);

// An inferred end (strength 0) only closes an open call.
const CLOSES = `(NOT ${REVIVAL} AND status = 'open')`;
// The room that finished is the call's own: its sid is kept, so its late (out of order) events
// are not taken for a revival.
const ROOM_FINISHED = callUpdate(`
  room_sid = IIF(${CLOSES}, COALESCE(room_sid, ?2), room_sid),
  status = IIF(${CLOSES}, 'ended', status),
  ended_at = IIF(${CLOSES}, COALESCE(ended_at, ?4), ended_at),
  end_reason = IIF(${CLOSES}, ${INFERRED_END_REASON}, end_reason),
  ended_by = IIF(${CLOSES}, 'unknown', ended_by),
  end_source = IIF(${CLOSES}, 'webhook', end_source),
  end_strength = IIF(${CLOSES}, 0, end_strength)`);

/** Only the revival, for participant events whose own write did not apply. */
const REVIVAL_ONLY = `UPDATE calls SET ${REVIVAL_COLUMNS} WHERE room = ?1 RETURNING ${SAW_REVIVAL} AS revival`;

/** A participant row is written only for the call's own room (not a revival). */
const FOR_THE_CALL = `WHERE EXISTS (SELECT 1 FROM calls WHERE room = ?1 AND NOT ${REVIVAL})`;

const PARTICIPANT_JOINED = `INSERT INTO call_participants (room, identity, kind, joined_at)
  SELECT ?1, ?6, ?7, ?4 ${FOR_THE_CALL}
  ON CONFLICT (room, identity) DO UPDATE SET kind = excluded.kind,
    joined_at = MIN(COALESCE(joined_at, excluded.joined_at), excluded.joined_at)`;

const PARTICIPANT_LEFT = `INSERT INTO call_participants (room, identity, kind, left_at, disconnect_reason)
  SELECT ?1, ?6, ?7, ?4, ?8 ${FOR_THE_CALL}
  ON CONFLICT (room, identity) DO UPDATE SET kind = excluded.kind,
    disconnect_reason = CASE WHEN left_at IS NULL OR excluded.left_at >= left_at
      THEN excluded.disconnect_reason ELSE disconnect_reason END,
    left_at = MAX(COALESCE(left_at, excluded.left_at), excluded.left_at)`;

/** A leave that arrives after room_finished (LiveKit retries out of order) still names the end. */
const RENAME_INFERRED_END = `UPDATE calls SET end_reason = ${INFERRED_END_REASON}
  WHERE room = ?1 AND status = 'ended' AND end_source = 'webhook'`;

/** The webhook kinds that carry a call's state; the others are `ignored`. */
const CALL_EVENTS = [
  'room_started',
  'room_finished',
  'participant_joined',
  'participant_left',
  'participant_connection_aborted',
] as const;

/** What a LiveKit webhook says about a call, as plain data (it crosses to the call's object). */
export type CallEvent = {
  kind: (typeof CALL_EVENTS)[number];
  room: string;
  roomSid: string | null;
  /** The latest LiveKit may have created the room (epoch ms), when the event says. */
  roomCreatedAtMs: number | null;
  /** When it happened (epoch ms). */
  at: number;
  /** The participant, for participant events. */
  participant: { identity: string; kind: string; disconnectReason: string | null } | null;
  /** The room's metadata: a call's facts when a token from `/token` created the room. */
  roomMetadata: string | null;
};

/** The call event a webhook carries, or none for one the ledger does not use. */
export function callEventFrom(event: WebhookEvent, now: number): CallEvent | undefined {
  const kind = CALL_EVENTS.find((k) => k === event.event);
  if (!kind) return undefined;
  const p = event.participant;
  return {
    kind,
    room: event.room?.name ?? '',
    roomSid: event.room?.sid || null,
    roomCreatedAtMs: roomCreatedAtMs(event) ?? null,
    at: Number(event.createdAt) > 0 ? Number(event.createdAt) * 1000 : now,
    participant: p
      ? {
          identity: p.identity,
          kind: kindName(p.kind),
          disconnectReason: disconnectName(p.disconnectReason),
        }
      : null,
    roomMetadata: event.room?.metadata || null,
  };
}

/**
 * Applies one call event to the ledger in one round trip (one `db.batch`, so all of it or
 * nothing), and tells what it was. Every effect is idempotent and independent of order (MIN/MAX
 * and "first end wins"), so a repeated delivery changes nothing and a retry after a failure
 * applies everything: no event id is recorded, so none can be taken for a duplicate. An event
 * from a room LiveKit recreated for an ended call (a revival) changes nothing but the revival
 * count, and the caller must close that room.
 */
export async function applyCallEvent(
  db: D1Database,
  event: CallEvent,
  now: number,
): Promise<AppliedWebhook> {
  const kind = event.kind;
  const p = event.participant;
  const participantEvent = kind !== 'room_started' && kind !== 'room_finished';
  const params = [
    event.room,
    event.roomSid,
    event.roomCreatedAtMs,
    event.at,
    now,
    p?.identity ?? '',
    p?.kind ?? 'STANDARD',
    p?.disconnectReason ?? null,
  ];
  // D1 wants exactly as many values as the statement's highest parameter number.
  const bind = (sql: string) =>
    db
      .prepare(sql)
      .bind(
        ...params.slice(0, Math.max(...[...sql.matchAll(/\?(\d+)/g)].map((m) => Number(m[1])))),
      );
  if (!participantEvent) {
    const [result] = await db.batch([bind(kind === 'room_started' ? ROOM_STARTED : ROOM_FINISHED)]);
    return { outcome: outcome(result) };
  }
  if (p) {
    const written = await db.batch(
      kind === 'participant_joined'
        ? [bind(PARTICIPANT_JOINED)]
        : [bind(PARTICIPANT_LEFT), bind(RENAME_INFERRED_END)],
    );
    if (written[0]!.meta.changes > 0) return { outcome: 'applied' };
  }
  // Nothing written: a room the edge does not track, or a revival (rare; one more round trip).
  const [result] = await db.batch([bind(REVIVAL_ONLY)]);
  return { outcome: outcome(result) };
}

function outcome(result: D1Result | undefined): WebhookOutcome {
  const row = result?.results[0] as { revival: number } | undefined;
  if (!row) return 'untracked';
  return row.revival ? 'revival' : 'applied';
}

/**
 * The latest LiveKit may have created the event's room (epoch ms), if the event says: to the ms,
 * or, from a seconds-only `creationTime`, the last ms of its second (revivals.ts says why).
 */
function roomCreatedAtMs(event: WebhookEvent): number | undefined {
  const ms = Number(event.room?.creationTimeMs ?? 0);
  if (ms > 0) return ms;
  const seconds = Number(event.room?.creationTime ?? 0);
  if (!(seconds > 0)) return undefined;
  return latestCreationMs({
    sid: undefined,
    createdAtMs: seconds * 1000,
    createdAtPrecisionMs: 1000,
  });
}

// livekit.ParticipantInfo.Kind and livekit.DisconnectReason numbers (the SDK does not export the enums).
const KINDS: Record<number, string> = {
  0: 'STANDARD',
  1: 'INGRESS',
  2: 'EGRESS',
  3: 'SIP',
  4: 'AGENT',
  7: 'CONNECTOR',
  8: 'BRIDGE',
};
function kindName(kind: unknown): string {
  return typeof kind === 'number' ? (KINDS[kind] ?? String(kind)) : String(kind ?? 'STANDARD');
}
const DISCONNECTS = [
  'UNKNOWN_REASON',
  'CLIENT_INITIATED',
  'DUPLICATE_IDENTITY',
  'SERVER_SHUTDOWN',
  'PARTICIPANT_REMOVED',
  'ROOM_DELETED',
  'STATE_MISMATCH',
  'JOIN_FAILURE',
  'MIGRATION',
  'SIGNAL_CLOSE',
  'ROOM_CLOSED',
  'USER_UNAVAILABLE',
  'USER_REJECTED',
  'SIP_TRUNK_FAILURE',
  'CONNECTION_TIMEOUT',
  'MEDIA_FAILURE',
  'AGENT_ERROR',
];
function disconnectName(reason: unknown): string | null {
  if (reason == null) return null;
  return typeof reason === 'number' ? (DISCONNECTS[reason] ?? String(reason)) : String(reason);
}
