import { AgentDispatchClient, RoomServiceClient } from 'livekit-server-sdk';
import type { Config } from '../config.ts';

function options(config: Config) {
  // Seconds; failover off so a self-hosted or Cloud host gets one bounded attempt per request.
  return { requestTimeout: config.LIVEKIT_TIMEOUT_MS / 1000, failover: false };
}

export function roomService(config: Config): RoomServiceClient {
  return new RoomServiceClient(
    config.LIVEKIT_URL,
    config.LIVEKIT_API_KEY,
    config.LIVEKIT_API_SECRET,
    options(config),
  );
}

export function agentDispatch(config: Config): AgentDispatchClient {
  return new AgentDispatchClient(
    config.LIVEKIT_URL,
    config.LIVEKIT_API_KEY,
    config.LIVEKIT_API_SECRET,
    options(config),
  );
}
