import { Hono } from 'hono';
import * as z from 'zod';
import { DispatchOverrides } from '../../wire-contract/index.ts';
import { chooseAgent, dispatchMetadata, sealedForAgent } from '../call/dispatch-settings.ts';
import type { AppEnv } from '../env.ts';
import { ApiError, unknownAgent } from '../errors.ts';
import { recordIssuedToken, type IssuedCall, type IssuedToken } from '../ledger/issued-tokens.ts';
import { callFactsMetadata } from '../call/call-facts.ts';
import { withLedger } from '../http/ledger-guard.ts';
import { mintParticipantToken } from '../livekit/participant-token.ts';
import { MAX_CREDENTIAL_CHARS, requireCaller } from '../http/caller.ts';
import { jsonBody, parseWith } from '../http/request-body.ts';
import { newRoomName, ROOM_NAME } from '../http/room-name.ts';
import { clientAddress, rateLimitEndUsers } from '../http/rate-limit.ts';

const MAX_ATTRIBUTES = 16;
/**
 * Room for every field at its documented maximum (4 KiB metadata, 16 attributes of 128 + 1024,
 * 8 KiB agent metadata, names), which 16 KiB was not.
 */
const MAX_TOKEN_BODY = 48 * 1024;

/** LiveKit's standard token-endpoint request (snake_case); unknown fields are refused by name. */
const TokenRequest = z
  .object({
    room_name: ROOM_NAME.optional(),
    participant_identity: z.string().min(1).max(128).optional(),
    participant_name: z.string().max(128).optional(),
    participant_metadata: z.string().max(4096).optional(),
    participant_attributes: z.record(z.string().min(1).max(128), z.string().max(1024)).optional(),
    room_config: z
      .object({
        agents: z
          .array(
            z
              .object({
                agent_name: z.string().max(128).optional(),
                metadata: z.string().max(8192).optional(),
              })
              .strict(),
          )
          .max(1, 'at most one agent per call')
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** The longest wait told to a caller at the cap. */
const CAPPED_RETRY_MAX_SECONDS = 60;

/** The ledger's refusal of a token, as the caller reads it. */
function tokenRefused(
  refused: Exclude<IssuedToken, { outcome: 'recorded' }>,
  room: string,
  maxOpenCalls: number,
  now: number,
): ApiError {
  if (refused.outcome === 'room_spent')
    return new ApiError(
      409,
      'call_ended',
      `room ${room} already hosted a call that ended; room names are single-use`,
    );
  // A started call frees its place when its caller hangs up, possibly long before its deadline.
  const at = refused.placeFreesAt ?? 0;
  const wait = Math.min(CAPPED_RETRY_MAX_SECONDS, Math.max(1, Math.ceil((at - now) / 1000)));
  return new ApiError(
    429,
    'too_many_open_calls',
    `this caller already has ${maxOpenCalls} open calls, the most allowed (MAX_OPEN_CALLS_PER_CALLER); end one, or retry after ${wait} s`,
    { 'Retry-After': String(wait) },
  );
}

export const tokenRoutes = new Hono<AppEnv>().post(
  '/',
  requireCaller('admin', 'app', 'user'),
  rateLimitEndUsers,
  async (c) => {
    const config = c.get('config');
    const caller = c.get('caller');
    const body = await jsonBody(c, TokenRequest, MAX_TOKEN_BODY, { allowEmpty: true });
    const trusted = caller.kind === 'admin' || caller.kind === 'app';

    let identity: string;
    if (trusted) {
      if (!body.participant_identity)
        throw new ApiError(
          400,
          'invalid_field',
          'participant_identity: required for backend callers',
        );
      identity = body.participant_identity;
    } else {
      identity = caller.kind === 'user' ? caller.identity : '';
      if (body.participant_identity !== undefined && body.participant_identity !== identity)
        throw new ApiError(
          403,
          'field_not_allowed',
          'participant_identity: end users get the identity from their credential',
        );
      if (body.room_name !== undefined)
        throw new ApiError(403, 'field_not_allowed', 'room_name: end users cannot choose the room');
    }

    const attributes = body.participant_attributes ?? {};
    const keys = Object.keys(attributes);
    if (keys.length > MAX_ATTRIBUTES)
      throw new ApiError(
        400,
        'invalid_field',
        `participant_attributes: at most ${MAX_ATTRIBUTES} attributes`,
      );
    const reserved = keys.find((k) => k.startsWith('lk.'));
    if (reserved)
      throw new ApiError(
        400,
        'invalid_field',
        `participant_attributes.${reserved}: keys beginning with lk. are reserved`,
      );

    const requested = body.room_config?.agents?.[0];
    const { agentName, allowed } = chooseAgent(config, requested?.agent_name);
    if (!allowed) throw unknownAgent('room_config.agents.0.agent_name', agentName);
    let overrides: DispatchOverrides = {};
    if (requested?.metadata) {
      if (!trusted)
        throw new ApiError(
          403,
          'field_not_allowed',
          'room_config.agents.0.metadata: the agent metadata is chosen by the server',
        );
      let json: unknown;
      try {
        json = JSON.parse(requested.metadata);
      } catch {
        throw new ApiError(
          400,
          'invalid_field',
          'room_config.agents.0.metadata: must be a JSON object',
        );
      }
      overrides = parseWith(DispatchOverrides, json, 'room_config.agents.0.metadata');
    }

    const now = Date.now();
    const room = body.room_name ?? newRoomName();
    const metadata = dispatchMetadata(config, overrides, identity, now);
    const call: IssuedCall = {
      room,
      identity,
      agentName,
      endMode: metadata.end_mode,
      maxDurationSeconds: metadata.max_duration_seconds,
      now,
      joinBy: now + config.TOKEN_TTL_SECONDS * 1000,
      // The latest the call can start is when the token expires; room_started tightens this.
      deadlineAt: now + (config.TOKEN_TTL_SECONDS + metadata.max_duration_seconds) * 1000,
    };
    const sealed = await sealedForAgent(config, metadata, room);
    // The participant token is also the credential for its own call (/calls/:room/end), so one
    // too long for the edge to take back as a credential is never handed out. Checked before the
    // ledger write, so a refused request opens no call and takes no place under the cap.
    const participantToken = await mintParticipantToken(config, {
      room,
      identity,
      name: body.participant_name,
      metadata: body.participant_metadata,
      attributes,
      agentName,
      agentMetadata: sealed,
      roomMetadata: callFactsMetadata(call, sealed),
    });
    if (participantToken.length > MAX_CREDENTIAL_CHARS)
      throw new ApiError(
        400,
        'invalid_field',
        `participant_metadata, participant_attributes: together too large for a token (${participantToken.length} of at most ${MAX_CREDENTIAL_CHARS} characters)`,
      );
    const issued = await withLedger('record the token', () =>
      recordIssuedToken(c.env.LEDGER, {
        ...call,
        // End users only: a backend serves many users under one key and enforces its own limits.
        callerKey:
          caller.kind !== 'user'
            ? null
            : caller.anonymous
              ? `ip:${clientAddress(c)}`
              : `id:${caller.identity}`,
        maxOpenCalls: config.MAX_OPEN_CALLS_PER_CALLER,
      }),
    );
    if (issued.outcome !== 'recorded')
      throw tokenRefused(issued, room, config.MAX_OPEN_CALLS_PER_CALLER, now);
    return c.json(
      {
        server_url: config.LIVEKIT_URL,
        participant_token: participantToken,
        room_name: room,
        participant_identity: identity,
        participant_name: body.participant_name ?? null,
      },
      201,
      { 'Cache-Control': 'no-store' },
    );
  },
);
