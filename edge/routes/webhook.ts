import { Hono } from 'hono';
import { WebhookEvent } from 'livekit-server-sdk';
import { verifySignedBody, errorMessage } from '../../wire-contract/index.ts';
import type { AppEnv } from '../env.ts';
import { ApiError } from '../errors.ts';
import { withLedger } from '../http/ledger-guard.ts';
import { applyWebhook } from '../ledger/webhook-events.ts';
import { watchAgentArrival } from '../call/agent-arrival.ts';
import { forgetCall, watchCall } from '../call/call-object.ts';
import { AGENT_KIND, deleteRoom } from '../livekit/rooms.ts';
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
  const room = event.room?.name ?? '';
  // One round trip, all or nothing: a failure is a 503 and LiveKit's retry applies the event.
  const { outcome, deadlineAt } = await withLedger('apply the webhook', () =>
    applyWebhook(c.env.LEDGER, event, Date.now()),
  );
  if (outcome === 'revival') {
    // Someone joined an ended call's room again with a still-valid token: close it at once. If
    // LiveKit cannot be reached, the error answer makes LiveKit retry, and the retry closes it
    // (counting the revived room once: the count is by room sid).
    log(c, 'warn', 'revival of an ended call: closing its room', {
      room,
      room_sid: event.room?.sid,
      event: event.event,
    });
    await deleteRoom(config, room);
  } else log(c, 'info', 'webhook', { event: event.event, room, id: event.id, outcome });
  // The call is live: from now its object keeps its deadline (start + maximum), plus grace. Should
  // that fail, the error answer makes LiveKit retry the event, which changes nothing else.
  if (deadlineAt !== undefined) {
    const due = deadlineAt + config.BACKSTOP_GRACE_SECONDS * 1000;
    await withLedger('watch the call deadline', () => watchCall(c.env, room, due));
  }
  // The room is gone and the call with it: its object need not wake (a D1 read saved). After the
  // answer, and only a saving: should it fail, the alarm finds the call ended at the deadline.
  if (outcome === 'applied' && event.event === 'room_finished')
    c.executionCtx.waitUntil(
      forgetCall(c.env, room).catch((err: unknown) =>
        log(c, 'warn', 'call object: forget failed', { room, message: errorMessage(err) }),
      ),
    );
  // A person joined: from now until its agent does, the edge watches that one comes.
  const joined = event.participant;
  if (
    outcome === 'applied' &&
    event.event === 'participant_joined' &&
    joined &&
    Number(joined.kind) !== AGENT_KIND &&
    config.AGENT_WAIT_SECONDS > 0
  )
    c.executionCtx.waitUntil(
      watchAgentArrival(c.env.LEDGER, config, room, joined.identity).catch((err: unknown) =>
        log(c, 'warn', 'agent arrival watch failed', {
          room,
          message: errorMessage(err),
        }),
      ),
    );
  return c.json({ outcome });
});
