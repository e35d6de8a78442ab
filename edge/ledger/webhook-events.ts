import type { WebhookEvent } from 'livekit-server-sdk';
import type { EndReason } from '../../wire-contract/index.ts';
import { closeCall, type CallRow } from './calls.ts';
import { isRevival, recordRevival } from './revivals.ts';

/** Disconnect reasons that mean an agent left on purpose; anything else means it vanished. */
const CLEAN_DISCONNECTS = new Set([
  'CLIENT_INITIATED',
  'ROOM_DELETED',
  'ROOM_CLOSED',
  'PARTICIPANT_REMOVED',
  'SERVER_SHUTDOWN',
]);

/** The id a webhook is deduplicated by. */
export function webhookEventId(event: WebhookEvent): string {
  return event.id || `${event.event}:${event.room?.name ?? ''}:${event.createdAt}`;
}

/** Forgets an event, so LiveKit's retry of it applies it instead of being a "duplicate". */
export async function forgetWebhookEvent(db: D1Database, eventId: string): Promise<void> {
  await db.prepare('DELETE FROM webhook_events WHERE id = ?').bind(eventId).run();
}

export type WebhookOutcome = 'applied' | 'duplicate' | 'untracked' | 'revival';

/**
 * Applies one LiveKit webhook to the ledger; duplicates (same event id) are ignored. Rooms the edge
 * never issued a token for are not tracked. An event from a room LiveKit recreated for an ended
 * call (a revival) changes nothing but the revival count: the caller must close that room.
 * Returns what happened, for the response and the log.
 */
export async function applyWebhook(
  db: D1Database,
  event: WebhookEvent,
  now: number,
): Promise<WebhookOutcome> {
  const room = event.room?.name ?? '';
  const eventId = webhookEventId(event);
  const seen = await db
    .prepare(
      'INSERT INTO webhook_events (id, event, room, received_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING',
    )
    .bind(eventId, event.event, room, now)
    .run();
  if (seen.meta.changes === 0) return 'duplicate';
  try {
    const tracked = await db
      .prepare(
        'SELECT max_duration_seconds, end_source, status, room_sid, ended_at FROM calls WHERE room = ?',
      )
      .bind(room)
      .first<
        Pick<CallRow, 'max_duration_seconds' | 'end_source' | 'status' | 'room_sid' | 'ended_at'>
      >();
    if (!tracked) return 'untracked';
    const instance = { sid: event.room?.sid || undefined, createdAtMs: roomCreatedAtMs(event) };
    if (isRevival(tracked, instance)) {
      await recordRevival(db, room, instance.sid, now);
      return 'revival';
    }
    const at = Number(event.createdAt) > 0 ? Number(event.createdAt) * 1000 : now;
    const p = event.participant;
    switch (event.event) {
      case 'room_started':
        // The real start tightens the backstop deadline from "issued + TTL + max" to "started + max".
        await db
          .prepare(
            `UPDATE calls SET room_sid = COALESCE(room_sid, ?2), started_at = MIN(COALESCE(started_at, ?3), ?3),
               deadline_at = MIN(deadline_at, ?3 + ?4 * 1000) WHERE room = ?1`,
          )
          .bind(room, event.room?.sid ?? null, at, tracked.max_duration_seconds)
          .run();
        break;
      case 'participant_joined':
        if (p)
          await db
            .prepare(
              `INSERT INTO call_participants (room, identity, kind, joined_at) VALUES (?1, ?2, ?3, ?4)
               ON CONFLICT (room, identity) DO UPDATE SET kind = excluded.kind,
                 joined_at = MIN(COALESCE(joined_at, excluded.joined_at), excluded.joined_at)`,
            )
            .bind(room, p.identity, kindName(p.kind), at)
            .run();
        await db
          .prepare(
            'UPDATE calls SET room_sid = COALESCE(room_sid, ?2), started_at = MIN(COALESCE(started_at, ?3), ?3) WHERE room = ?1',
          )
          .bind(room, event.room?.sid ?? null, at)
          .run();
        break;
      case 'participant_left':
      case 'participant_connection_aborted':
        if (p)
          await db
            .prepare(
              `INSERT INTO call_participants (room, identity, kind, left_at, disconnect_reason) VALUES (?1, ?2, ?3, ?4, ?5)
               ON CONFLICT (room, identity) DO UPDATE SET kind = excluded.kind,
                 disconnect_reason = CASE WHEN left_at IS NULL OR excluded.left_at >= left_at
                   THEN excluded.disconnect_reason ELSE disconnect_reason END,
                 left_at = MAX(COALESCE(left_at, excluded.left_at), excluded.left_at)`,
            )
            .bind(room, p.identity, kindName(p.kind), at, disconnectName(p.disconnectReason))
            .run();
        // A leave that arrives after room_finished (LiveKit retries out of order) still names the end.
        if (tracked.end_source === 'webhook')
          await db
            .prepare(`UPDATE calls SET end_reason = ?2 WHERE room = ?1 AND end_source = 'webhook'`)
            .bind(room, await inferEndReason(db, room))
            .run();
        break;
      case 'room_finished':
        await closeCall(db, room, {
          reason: await inferEndReason(db, room),
          endedBy: 'unknown',
          source: 'webhook',
          at,
          strong: false,
        });
        break;
    }
  } catch (err) {
    await forgetWebhookEvent(db, eventId);
    throw err;
  }
  return 'applied';
}

/** When LiveKit created the event's room (epoch ms), if the event says. */
function roomCreatedAtMs(event: WebhookEvent): number | undefined {
  const ms = Number(event.room?.creationTimeMs ?? 0);
  if (ms > 0) return ms;
  const seconds = Number(event.room?.creationTime ?? 0);
  return seconds > 0 ? seconds * 1000 : undefined;
}

/** When only LiveKit speaks, name the end from who left how; the agent's report may replace it. */
async function inferEndReason(db: D1Database, room: string): Promise<EndReason> {
  const { results } = await db
    .prepare(
      'SELECT kind, disconnect_reason FROM call_participants WHERE room = ? AND left_at IS NOT NULL ORDER BY left_at',
    )
    .bind(room)
    .all<{ kind: string; disconnect_reason: string | null }>();
  if (results.some((p) => p.kind === 'AGENT' && !CLEAN_DISCONNECTS.has(p.disconnect_reason ?? '')))
    return 'error';
  if (results.some((p) => p.kind !== 'AGENT' && p.disconnect_reason === 'CLIENT_INITIATED'))
    return 'participant_left';
  return 'room_deleted';
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
