import { Hono } from 'hono';
import { WebhookEvent } from 'livekit-server-sdk';
import { verifySignedBody, errorMessage } from '../../wire-contract/index.ts';
import type { AppEnv } from '../env.ts';
import { ApiError } from '../errors.ts';
import { withLedger } from '../http/ledger-guard.ts';
import { callEventFrom } from '../ledger/webhook-events.ts';
import { callObject } from '../call/call-object.ts';
import { deleteRoom } from '../livekit/rooms.ts';
import { log } from '../log.ts';
import { readBody } from '../http/request-body.ts';

const MAX_WEBHOOK_BYTES = 256 * 1024;

/**
 * LiveKit webhooks: the raw body checked against its signature with the check agent reports use
 * (either configured key pair: LiveKit may still sign with the previous one during a rotation),
 * then read as the SDK's receiver reads it.
 */
export const webhookRoutes = new Hono<AppEnv>().post('/webhook', async (c) => {
  const config = c.get('config');
  const raw = await readBody(c, MAX_WEBHOOK_BYTES);
  const auth = c.req.header('authorization');
  if (!auth)
    throw new ApiError(
      401,
      'invalid_signature',
      'webhook signature rejected: missing Authorization',
    );
  const verified = await verifySignedBody(raw, auth, config.liveKitKeyPairs);
  if (!verified.ok)
    throw new ApiError(401, 'invalid_signature', `webhook signature rejected: ${verified.problem}`);
  let json;
  try {
    json = JSON.parse(raw) as Parameters<typeof WebhookEvent.fromJson>[0];
  } catch {
    throw new ApiError(400, 'malformed_json', 'webhook body is not valid JSON');
  }
  let event;
  try {
    event = WebhookEvent.fromJson(json, { ignoreUnknownFields: true });
  } catch {
    throw new ApiError(400, 'invalid_field', 'webhook body: not a LiveKit webhook event');
  }
  const call = callEventFrom(event, Date.now());
  if (!call) return c.json({ outcome: 'ignored' });
  const room = call.room;
  // The call's object applies it (D1 is written only when the call ends); the object failing is a
  // 503, and LiveKit's retry applies the event (every effect is idempotent).
  const { outcome } = room
    ? await withLedger('apply the webhook', () => callObject(c.env, room).webhook(call))
    : { outcome: 'untracked' as const };
  if (outcome === 'revival') {
    // Someone joined an ended call's room again with a still-valid token: close it at once. If
    // LiveKit cannot be reached, the error answer makes LiveKit retry, and the retry closes it
    // (counting the revived room once: the count is by room sid).
    log(c, 'warn', 'revival of an ended call: closing its room', {
      room,
      room_sid: call.roomSid,
      event: event.event,
    });
    await deleteRoom(config, room);
  } else log(c, 'info', 'webhook', { event: event.event, room, id: event.id, outcome });
  // A person joined: from now until its agent does, the call's object watches that one comes.
  const joined = call.participant;
  if (
    outcome === 'applied' &&
    call.kind === 'participant_joined' &&
    joined &&
    joined.kind !== 'AGENT' &&
    config.AGENT_WAIT_SECONDS > 0
  )
    c.executionCtx.waitUntil(
      callObject(c.env, room)
        .watchArrival(room, joined.identity)
        .catch((err: unknown) =>
          log(c, 'warn', 'agent arrival watch failed', { room, message: errorMessage(err) }),
        ),
    );
  return c.json({ outcome });
});
