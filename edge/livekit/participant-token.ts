import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';
import type { Config } from '../config.ts';

export type ParticipantTokenRequest = {
  room: string;
  identity: string;
  name?: string;
  metadata?: string;
  attributes?: Record<string, string>;
  agentName: string;
  agentMetadata: string;
  /** The room's metadata should this join create the room (the call's facts). */
  roomMetadata: string;
};

/**
 * Mints a join-only token for one room. The dispatch rides in the room configuration, which
 * LiveKit applies only when this join creates the room: hence fresh room names.
 */
export async function mintParticipantToken(
  config: Config,
  req: ParticipantTokenRequest,
): Promise<string> {
  const token = new AccessToken(config.LIVEKIT_API_KEY, config.LIVEKIT_API_SECRET, {
    identity: req.identity,
    name: req.name,
    metadata: req.metadata,
    attributes: req.attributes,
    ttl: config.TOKEN_TTL_SECONDS,
  });
  token.addGrant({
    roomJoin: true,
    room: req.room,
    canPublish: true,
    canSubscribe: true,
    canPublishData: true,
  });
  token.roomConfig = new RoomConfiguration({
    metadata: req.roomMetadata,
    agents: [new RoomAgentDispatch({ agentName: req.agentName, metadata: req.agentMetadata })],
  });
  return token.toJwt();
}
