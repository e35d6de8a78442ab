import { Hono, type Context } from 'hono';
import * as z from 'zod';
import { DispatchOverrides } from '../../wire-contract/index.ts';
import { callObject } from '../call/call-object.ts';
import { presentCall, presentCallToCaller } from '../call/call-view.ts';
import { chooseAgent, dispatchMetadata, sealedForAgent } from '../call/dispatch-settings.ts';
import type { AppEnv, Caller } from '../env.ts';
import { ApiError, unknownAgent } from '../errors.ts';
import { requireCaller } from '../http/caller.ts';
import { withLedger } from '../http/ledger-guard.ts';
import { jsonBody, parseWith } from '../http/request-body.ts';
import { roomParam } from '../http/room-name.ts';
import {
  type CallRow,
  type EndCaller,
  findCall,
  listCalls,
  openCall,
  wasIssuedTo,
} from '../ledger/calls.ts';
import {
  recordDispatch,
  claimDispatch,
  isPendingDispatch,
  releaseDispatch,
} from '../ledger/dispatch-claims.ts';
import { ensureDispatch } from '../livekit/dispatch.ts';
import { deleteRoom, removeAgents, roomExists } from '../livekit/rooms.ts';

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
    (await withLedger('read the call', () => callObject(c.env, room).row(room)))?.status !== 'open'
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
    const record = await withLedger('read the call', () => callObject(c.env, room).record(room));
    return record && presentCall(record.row, record.participants, record.report);
  }
  const { identity } = endCaller(caller);
  const record = await withLedger('read the call', () =>
    callObject(c.env, room).callerRecord(room, identity),
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

/**
 * How long after an inferred `room_deleted` a caller's end still replaces it: the retry of an end
 * whose first attempt deleted the room and then failed to record (a 503), the deletion having
 * made the agent or LiveKit infer `room_deleted` meanwhile.
 */
export const CALLER_RETRY_WINDOW_MS = 30_000;

/**
 * Whether a caller's (not an operator's) end applies: to an open call, or over a `room_deleted`
 * inferred moments ago, which says only that someone deleted the room: the caller's retry says
 * who. Any other inferred end (`participant_left`, `error`) stays for the agent's report to
 * correct, which an API end, being authoritative, would prevent.
 */
function callerMayReplace(call: CallRow, now: number): boolean {
  if (call.status === 'open') return true;
  return (
    call.end_strength === 0 &&
    call.end_reason === 'room_deleted' &&
    now - (call.ended_at ?? 0) < CALLER_RETRY_WINDOW_MS
  );
}

async function existingCall(c: Context<AppEnv>, room: string) {
  const call = await withLedger('read the call', () => callObject(c.env, room).row(room));
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
        callObject(c.env, room).agentRemoved(room, Date.now()),
      );
      return c.json({ removed_agents: removed, call: await callView(c, room) });
    }
    // LiveKit first, even for a call the ledger has ended: its room may have been recreated by a
    // token still valid (a revival). If LiveKit fails the ledger stays as it was; "not found"
    // means already gone. An operator's end replaces one only inferred (webhooks, a token never
    // used); an authoritative end stands and the answer says already_ended. A caller's end (a
    // participant, a user, the app key) records nothing on a call already ended when it asked:
    // any holder of an unexpired token would otherwise rewrite its end, and, an API end being
    // authoritative, keep the agent's later report from correcting it. On a call still open it
    // replaces what the deletion it causes makes others infer meanwhile (the agent's room_deleted,
    // LiveKit's room_finished), as the operator's does; and so does its retry, on an end inferred
    // moments ago (callerMayReplace).
    await deleteRoom(config, room);
    // False when the agent's report recorded the end in the meantime: that end stands.
    // A failure here answers 503 with the room already gone; the retry's DeleteRoom finds no room
    // (not an error) and records this end, which replaces any inferred one meanwhile.
    const recorded = await withLedger('record the end', () =>
      callObject(c.env, room).end(room, {
        reason: 'api_end_call',
        endedBy: 'api',
        source: 'api',
        at: Date.now(),
        note: body.reason ?? null,
        strong: true,
        caller: endCaller(c.get('caller')),
        onlyIfOpen: c.get('caller').kind !== 'admin' && !callerMayReplace(call, Date.now()),
      }),
    );
    return c.json({ already_ended: !recorded, call: await callView(c, room) });
  })
  .post('/:room/dispatch', requireCaller('admin', 'app'), async (c) => {
    const room = roomParam(c);
    const body = await jsonBody(c, DispatchRequest, undefined, { allowEmpty: true });
    const config = c.get('config');
    const { agentName, allowed } = chooseAgent(config, body.agent_name);
    if (!allowed) throw unknownAgent('agent_name', agentName);
    const known = await withLedger('read the call', () => callObject(c.env, room).row(room));
    if (known?.status === 'ended')
      throw new ApiError(409, 'call_ended', `the call in room ${room} has ended`);
    if (!(await roomExists(config, room)))
      throw new ApiError(404, 'room_not_found', `LiveKit has no active room ${room}`);
    const now = Date.now();
    const metadata = dispatchMetadata(config, body.metadata, '', now);
    const maxDurationSeconds = metadata.max_duration_seconds;
    const deadlineAt = known?.deadline_at ?? now + maxDurationSeconds * 1000;
    if (!known)
      await withLedger('open the call', () =>
        openCall(c.env.LEDGER, {
          room,
          agentName,
          endMode: metadata.end_mode,
          maxDurationSeconds,
          now,
          deadlineAt,
        }),
      );
    // A call this route opened (no token: its room's start came before the ledger knew it): its
    // object takes it from the archive and keeps its deadline; asked again on a retry, in case
    // the first ask failed.
    if (!known || known.join_by === null)
      await withLedger('watch the call deadline', () => callObject(c.env, room).watch(room));
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
    if (dispatched.outcome === 'no_room') {
      await releaseDispatch(c.env.LEDGER, room, claim).catch(() => {});
      throw new ApiError(404, 'room_not_found', `LiveKit has no room ${room}`);
    }
    const { dispatchId, created } = dispatched;
    await withLedger('record the dispatch', () => recordDispatch(c.env.LEDGER, room, dispatchId));
    return c.json(
      { dispatch_id: dispatchId, created, room, agent_name: agentName },
      created ? 201 : 200,
    );
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
