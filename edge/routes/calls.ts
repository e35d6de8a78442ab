import { Hono, type Context } from 'hono';
import * as z from 'zod';
import {
  AdmissionRequest,
  type AdmissionAnswer,
  CallReport,
  DispatchOverrides,
  END_REASONS,
  MAX_REPORT_BYTES,
  verifySignedBody,
  errorMessage,
} from '../../wire-contract/index.ts';
import type { AppEnv, Caller } from '../env.ts';
import { chooseAgent, dispatchMetadata, sealedForAgent } from '../call/dispatch-settings.ts';
import { ApiError } from '../errors.ts';
import { presentCall, presentCallToCaller } from '../call/call-view.ts';
import {
  callerRecord,
  callRecord,
  closeCall,
  type EndCaller,
  findCall,
  listCalls,
  markAgentRemoved,
  openCall,
  recordDispatch,
  claimDispatch,
  isPendingDispatch,
  releaseDispatch,
  recordReport,
  wasIssuedTo,
} from '../ledger/calls.ts';
import { withLedger } from '../http/ledger-guard.ts';
import { log } from '../log.ts';
import { ensureDispatch } from '../livekit/dispatch.ts';
import { agentPresent, deleteRoom, removeAgents, roomExists } from '../livekit/rooms.ts';
import { requireCaller } from '../http/caller.ts';
import {
  jsonBody,
  MAX_JSON_BODY,
  parseJsonText,
  parseWith,
  readBody,
} from '../http/request-body.ts';
import { countIfRevival } from '../ledger/revivals.ts';
import { ADMITTED_AGENT_GRACE_MS, admitAgentJob } from '../ledger/admissions.ts';
import { watchAdmittedAgentAfter } from '../call/agent-arrival.ts';
import { ROOM_NAME } from '../http/room-name.ts';

const EndRequest = z
  .object({ mode: z.enum(['end_for_all', 'remove_agent']), reason: z.string().max(200).optional() })
  .strict();
const DispatchRequest = z
  .object({ agent_name: z.string().max(128).optional(), metadata: DispatchOverrides.optional() })
  .strict();
const ListQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(512).optional(),
    status: z.enum(['open', 'ended', 'not_joined']).optional(),
  })
  .strict();

function roomParam(c: Context<AppEnv>): string {
  return parseWith(ROOM_NAME, c.req.param('room'), 'room');
}

/**
 * Admin, or someone this edge issued a token for in this room (by app JWT or by that LiveKit
 * token; an expired LiveKit token only while the call is open).
 */
async function authorizeForRoom(c: Context<AppEnv>, room: string): Promise<void> {
  const caller = c.get('caller');
  if (caller.kind === 'admin' || caller.kind === 'app') return;
  if (caller.kind === 'participant' && caller.room !== room)
    throw new ApiError(403, 'not_a_participant', 'this LiveKit token is for another room');
  if (
    caller.kind === 'participant' &&
    caller.expired &&
    (await withLedger('read the call', () => findCall(c.env.LEDGER, room)))?.status !== 'open'
  )
    throw new ApiError(
      401,
      'token_expired',
      'this LiveKit token has expired and its call is no longer open',
      {
        'WWW-Authenticate': 'Bearer error="invalid_token"',
      },
    );
  if (
    (caller.kind === 'participant' || (caller.kind === 'user' && !caller.anonymous)) &&
    (await withLedger('read the call', () => wasIssuedTo(c.env.LEDGER, room, caller.identity)))
  )
    return;
  throw new ApiError(403, 'not_a_participant', `caller was not issued a token for room ${room}`);
}

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

/** Who is asking, as the ledger records an end it asked for. */
function endCaller(caller: Caller): EndCaller {
  return { kind: caller.kind, identity: 'identity' in caller ? caller.identity : null };
}

/**
 * The call as this caller may see it: the operator view for the admin key, the caller view for
 * everyone else (participants, users, and the app key: a backend's credential, kept out of the
 * report's internal detail like the callers it serves; docs/api.md).
 */
async function callView(c: Context<AppEnv>, room: string) {
  const caller = c.get('caller');
  if (caller.kind === 'admin') {
    const record = await withLedger('read the call', () => callRecord(c.env.LEDGER, room));
    return record && presentCall(record.row, record.participants, record.report);
  }
  const { identity } = endCaller(caller);
  const record = await withLedger('read the call', () =>
    callerRecord(c.env.LEDGER, room, identity),
  );
  return record && presentCallToCaller(record.row, record.own);
}

/** The dispatch another request made (or is making) for this room, once it has an id. */
async function settledDispatch(
  c: Context<AppEnv>,
  room: string,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs + 1_000;
  for (;;) {
    const id = (await withLedger('read the call', () => findCall(c.env.LEDGER, room)))?.dispatch_id;
    if (!id)
      throw new ApiError(
        409,
        'dispatch_failed',
        'a concurrent dispatch into this room failed; retry',
      );
    if (!isPendingDispatch(id)) return id;
    if (Date.now() > deadline)
      throw new ApiError(
        503,
        'dispatch_in_progress',
        'another request is dispatching into this room; retry',
        {
          'Retry-After': '1',
        },
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function existingCall(c: Context<AppEnv>, room: string) {
  const call = await withLedger('read the call', () => findCall(c.env.LEDGER, room));
  if (!call) throw new ApiError(404, 'call_not_found', `no call for room ${room}`);
  return call;
}

export const callRoutes = new Hono<AppEnv>()
  .post('/:room/end', requireCaller('admin', 'app', 'user', 'participant'), async (c) => {
    const room = roomParam(c);
    await authorizeForRoom(c, room);
    const body = await jsonBody(c, EndRequest);
    const call = await existingCall(c, room);
    const config = c.get('config');
    if (call.status === 'ended' && body.mode === 'remove_agent')
      return c.json({ already_ended: true, call: await callView(c, room) });
    if (body.mode === 'remove_agent') {
      const removed = await removeAgents(config, room);
      await withLedger('record the removal', () =>
        markAgentRemoved(c.env.LEDGER, room, Date.now()),
      );
      return c.json({ removed_agents: removed, call: await callView(c, room) });
    }
    // LiveKit first, even for a call the ledger has ended: its room may have been recreated by a
    // token still valid (a revival). If LiveKit fails the ledger stays as it was; "not found"
    // means already gone. An operator's end replaces one only inferred (webhooks, a token never
    // used); an authoritative end stands and the answer says already_ended. A caller's end (a
    // participant, a user, the app key) records nothing on a call already ended: any holder of
    // an unexpired token would otherwise rewrite its end, and, an API end being authoritative,
    // keep the agent's later report from correcting it.
    await deleteRoom(config, room);
    // False when the agent's report recorded the end in the meantime: that end stands.
    // A failure here answers 503 with the room already gone; the retry's DeleteRoom finds no room
    // (not an error) and records this end, which replaces any inferred one meanwhile.
    const recorded = await withLedger('record the end', () =>
      closeCall(c.env.LEDGER, room, {
        reason: 'api_end_call',
        endedBy: 'api',
        source: 'api',
        at: Date.now(),
        note: body.reason ?? null,
        strong: true,
        caller: endCaller(c.get('caller')),
        onlyIfOpen: c.get('caller').kind !== 'admin',
      }),
    );
    return c.json({ already_ended: !recorded, call: await callView(c, room) });
  })
  .post('/:room/dispatch', requireCaller('admin', 'app'), async (c) => {
    const room = roomParam(c);
    const body = await jsonBody(c, DispatchRequest, undefined, { allowEmpty: true });
    const config = c.get('config');
    const agentName = chooseAgent(config, body.agent_name, 'agent_name');
    const known = await withLedger('read the call', () => findCall(c.env.LEDGER, room));
    if (known?.status === 'ended')
      throw new ApiError(409, 'call_ended', `the call in room ${room} has ended`);
    if (!(await roomExists(config, room)))
      throw new ApiError(404, 'room_not_found', `LiveKit has no active room ${room}`);
    const now = Date.now();
    const metadata = dispatchMetadata(config, body.metadata, '', now);
    const maxDurationSeconds = metadata.max_duration_seconds;
    if (!known)
      await withLedger('open the call', () =>
        openCall(c.env.LEDGER, {
          room,
          agentName,
          endMode: metadata.end_mode,
          maxDurationSeconds,
          now,
          deadlineAt: now + maxDurationSeconds * 1000,
        }),
      );
    // A claim older than twice this request's own bound was left by a request that died midway.
    const claim = await withLedger('claim the dispatch', () =>
      claimDispatch(
        c.env.LEDGER,
        room,
        c.get('requestId'),
        Date.now(),
        2 * (config.LIVEKIT_TIMEOUT_MS + 1_000),
      ),
    );
    if (!claim) {
      const dispatchId = await settledDispatch(c, room, config.LIVEKIT_TIMEOUT_MS);
      return c.json({ dispatch_id: dispatchId, created: false, room, agent_name: agentName }, 200);
    }
    let dispatched;
    try {
      const sealed = await sealedForAgent(config, metadata, room);
      dispatched = await ensureDispatch(config, room, agentName, sealed);
    } catch (err) {
      await releaseDispatch(c.env.LEDGER, room, claim).catch(() => {}); // stale claims expire anyway
      throw err;
    }
    const { dispatchId, created } = dispatched;
    await withLedger('record the dispatch', () => recordDispatch(c.env.LEDGER, room, dispatchId));
    return c.json(
      { dispatch_id: dispatchId, created, room, agent_name: agentName },
      created ? 201 : 200,
    );
  })
  // The agent asks, signed, before any model work: a room recreated for an ended call (a token
  // reused after the end) gets no greeting, and the room is closed.
  .post('/:room/admit', async (c) => {
    const room = roomParam(c);
    const ask = parseJsonText(AdmissionRequest, await signedBody(c, MAX_JSON_BODY, 'admission'));
    if (ask.room !== room) throw new ApiError(400, 'invalid_field', 'room: does not match the URL');
    const call = await withLedger('read the call', () => findCall(c.env.LEDGER, room));
    // A room the edge never issued a token for is not the edge's to govern.
    if (!call) return c.json({ admit: true } satisfies AdmissionAnswer);
    if (call.status === 'open') {
      // One agent per call: a re-dispatch may race a slow first job, and the second to ask stays
      // out, unless the first was admitted long ago and is not in the room (it died on the way).
      const another = call.agent_job_id != null && call.agent_job_id !== ask.job_id;
      const present = another && (await agentPresent(c.get('config'), room).catch(() => undefined));
      const now = Date.now();
      const admission = present
        ? 'refused'
        : await withLedger('admit the agent', () =>
            admitAgentJob(c.env.LEDGER, room, ask.job_id, now, { joining: ask.joining }),
          );
      // A newly admitted job (or a late one whose place its join renewed) is watched until it
      // joins: one that dies on the way is replaced. It is told how long it has: a job still on
      // its way past that asks again before it joins (`joining`), and leaves if it was replaced.
      if (admission === 'admitted') {
        watchAdmittedAgentAfter(c.executionCtx, c.env.LEDGER, c.get('config'), room, ask.job_id);
        return c.json({
          admit: true,
          join_within_ms: ADMITTED_AGENT_GRACE_MS,
        } satisfies AdmissionAnswer);
      }
      if (admission === 'again') {
        // A retried request: the grace still counts from the first admission.
        const left = (call.agent_admitted_at ?? now) + ADMITTED_AGENT_GRACE_MS - now;
        return c.json({ admit: true, join_within_ms: Math.max(0, left) } satisfies AdmissionAnswer);
      }
      if (ask.joining) {
        log(c, 'warn', 'late agent refused: another job took its place while it was on its way', {
          room,
          job_id: ask.job_id,
        });
        return c.json({ admit: false, reason: 'superseded' } satisfies AdmissionAnswer);
      }
      log(c, 'info', 'agent refused: the call has its agent', { room, job_id: ask.job_id });
      return c.json({ admit: false, reason: 'agent_present' } satisfies AdmissionAnswer);
    }
    const instance = { sid: ask.room_sid || undefined, createdAtMs: ask.room_created_at };
    await withLedger('count the revival', () =>
      countIfRevival(c.env.LEDGER, room, instance, Date.now()),
    );
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
  })
  // The agent's signed end-of-call report; accepted once per call id, retries answered 200.
  .post('/:room/report', async (c) => {
    const room = roomParam(c);
    const raw = await signedBody(c, MAX_REPORT_BYTES, 'report');
    const report = parseJsonText(CallReport, raw);
    if (report.room !== room)
      throw new ApiError(400, 'invalid_field', 'room: does not match the URL');
    // One round trip: stored once per call id, and applied to the call (its start, and its end
    // unless a stronger one stands) on a duplicate too, so a retry after a failure still closes it.
    // An agent that only saw the room vanish cannot say who ended it: that end stays replaceable.
    const { found, stored } = await withLedger('record the report', () =>
      recordReport(c.env.LEDGER, report, raw, Date.now(), {
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
  })
  .get('/:room', requireCaller('admin', 'app', 'user', 'participant'), async (c) => {
    const room = roomParam(c);
    await authorizeForRoom(c, room);
    const details = await callView(c, room);
    if (!details) throw new ApiError(404, 'call_not_found', `no call for room ${room}`);
    return c.json(details);
  })
  .get('/', requireCaller('admin'), async (c) => {
    const query = parseWith(ListQuery, c.req.query(), 'query');
    let cursor: { createdAt: number; room: string } | undefined;
    if (query.cursor) {
      try {
        const [createdAt, room] = JSON.parse(
          atob(query.cursor.replace(/-/g, '+').replace(/_/g, '/')),
        ) as [number, string];
        if (!Number.isFinite(createdAt) || typeof room !== 'string') throw new Error();
        cursor = { createdAt, room };
      } catch {
        throw new ApiError(400, 'invalid_field', 'cursor: not a cursor this server returned');
      }
    }
    const page = await withLedger('list calls', () =>
      listCalls(c.env.LEDGER, query.limit, cursor, query.status),
    );
    const next = page.next
      ? btoa(JSON.stringify([page.next.createdAt, page.next.room]))
          .replace(/\+/g, '-')
          .replace(/\//g, '_')
          .replace(/=+$/, '')
      : null;
    return c.json({ calls: page.calls.map((row) => presentCall(row)), next_cursor: next });
  });
