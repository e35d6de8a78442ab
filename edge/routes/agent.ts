import { Hono, type Context } from 'hono';
import {
  AdmissionRequest,
  type AdmissionAnswer,
  CallReport,
  END_REASONS,
  MAX_REPORT_BYTES,
  verifySignedBody,
  errorMessage,
} from '../../wire-contract/index.ts';
import { callObject } from '../call/call-object.ts';
import type { AppEnv } from '../env.ts';
import { ApiError } from '../errors.ts';
import { withLedger } from '../http/ledger-guard.ts';
import { MAX_JSON_BODY, parseJsonText, readBody } from '../http/request-body.ts';
import { roomParam } from '../http/room-name.ts';
import { deleteRoom } from '../livekit/rooms.ts';
import { log } from '../log.ts';

/**
 * A body the agent signed with a LiveKit key pair (reports, admission requests): the current pair
 * or, during a rotation, the previous one, which agents not yet redeployed still hold.
 */
async function signedBody(c: Context<AppEnv>, maxBytes: number, what: string): Promise<string> {
  const raw = await readBody(c, maxBytes);
  const verified = await verifySignedBody(
    raw,
    c.req.header('authorization'),
    c.get('config').liveKitKeyPairs,
  );
  if (!verified.ok)
    throw new ApiError(401, 'invalid_signature', `${what} signature rejected: ${verified.problem}`);
  return raw;
}

/**
 * The agent's own requests about its call, each signed with a LiveKit key pair (no bearer
 * credential): its admission before any model work, and its end-of-call report.
 */
export const agentRoutes = new Hono<AppEnv>()
  // The agent asks, signed, before any model work: a room recreated for an ended call (a token
  // reused after the end) gets no greeting, and the room is closed.
  .post('/:room/admit', async (c) => {
    const room = roomParam(c);
    const ask = parseJsonText(AdmissionRequest, await signedBody(c, MAX_JSON_BODY, 'admission'));
    if (ask.room !== room) throw new ApiError(400, 'invalid_field', 'room: does not match the URL');
    // The object may ask LiveKit whether another job is in the room: its bound counts too.
    const admission = await withLedger(
      'admit the agent',
      () => callObject(c.env, room).admit(ask),
      { alsoMs: c.get('config').LIVEKIT_TIMEOUT_MS },
    );
    // A room the edge never issued a token for is not the edge's to govern.
    if (!admission) return c.json({ admit: true } satisfies AdmissionAnswer);
    switch (admission.outcome) {
      case 'admitted':
        // Watched until it joins: a job that dies on the way is replaced. It is told how long it
        // has: a job still on its way past that asks again before it joins (`joining`), and
        // leaves if it was replaced.
        if (c.get('config').AGENT_WAIT_SECONDS > 0)
          c.executionCtx.waitUntil(
            callObject(c.env, room)
              .watchAdmitted(room, ask.job_id)
              .catch((err: unknown) =>
                log(c, 'warn', 'admitted agent watch failed', {
                  room,
                  job_id: ask.job_id,
                  message: errorMessage(err),
                }),
              ),
          );
        return c.json({
          admit: true,
          join_within_ms: admission.joinWithinMs ?? 0,
        } satisfies AdmissionAnswer);
      case 'again':
        // A retried request: the grace still counts from the first admission.
        return c.json({
          admit: true,
          join_within_ms: admission.joinWithinMs ?? 0,
        } satisfies AdmissionAnswer);
      case 'superseded':
        log(c, 'warn', 'late agent refused: another job took its place while it was on its way', {
          room,
          job_id: ask.job_id,
        });
        return c.json({ admit: false, reason: 'superseded' } satisfies AdmissionAnswer);
      case 'agent_present':
        log(c, 'info', 'agent refused: the call has its agent', { room, job_id: ask.job_id });
        return c.json({ admit: false, reason: 'agent_present' } satisfies AdmissionAnswer);
      case 'call_ended':
        log(c, 'warn', 'agent refused: the call has ended; closing its room', {
          room,
          room_sid: ask.room_sid,
          job_id: ask.job_id,
        });
        // The agent leaves either way; a LiveKit failure here is left to the webhook and the agent.
        await deleteRoom(c.get('config'), room).catch((err: unknown) =>
          log(c, 'warn', 'could not close a revived room', {
            room,
            message: errorMessage(err),
          }),
        );
        return c.json({ admit: false, reason: 'call_ended' } satisfies AdmissionAnswer);
    }
  })
  // The agent's signed end-of-call report; accepted once per call id, retries answered 200.
  .post('/:room/report', async (c) => {
    const room = roomParam(c);
    const raw = await signedBody(c, MAX_REPORT_BYTES, 'report');
    const report = parseJsonText(CallReport, raw);
    if (report.room !== room)
      throw new ApiError(400, 'invalid_field', 'room: does not match the URL');
    // In the call's object: stored once per call id, and applied to the call (its start, and its end
    // unless a stronger one stands) on a duplicate too, so a retry after a failure still closes it.
    // An agent that only saw the room vanish cannot say who ended it: that end stays replaceable.
    const { found, stored } = await withLedger('record the report', () =>
      callObject(c.env, room).report(report, raw, {
        reason: report.end_reason,
        endedBy: report.ended_by,
        source: 'agent',
        at: Date.parse(report.ended_at),
        strong: END_REASONS[report.end_reason].authoritative,
      }),
    );
    // Final, and the agent drops the report on this status and code (FINAL_REPORT_REFUSALS): the
    // room was never the edge's (an agent /admit let into a room no token of the edge made: a SIP
    // dispatch rule's, another backend's), or retention deleted its call; no retry can change it.
    if (!found) throw new ApiError(404, 'call_not_found', `no call for room ${room}`);
    if (!stored) return c.json({ accepted: false, duplicate: true, call_id: report.call_id });
    log(c, 'info', 'report accepted', {
      room,
      call_id: report.call_id,
      end_reason: report.end_reason,
    });
    return c.json({ accepted: true, duplicate: false, call_id: report.call_id }, 201);
  });
