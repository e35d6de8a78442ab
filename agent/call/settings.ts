import { log as agentsLog } from '@livekit/agents';
import { openDispatchMetadata, type DispatchMetadata } from '../../wire-contract/index.ts';
import type { LogFn } from '../log.ts';

/**
 * The call's settings from the edge's dispatch metadata, which arrives sealed for this room
 * (wire-contract/sealed-metadata.ts). Anything else (no metadata, a dispatch made elsewhere, a
 * blob for another room or another key) leaves every setting to the agent's config, with a
 * warning when there was something to read: a call is never refused for its metadata. During a key
 * rotation the edge seals with the previous secret, so both are tried (current first).
 */
export async function callSettings(
  raw: string | undefined,
  room: string,
  apiSecrets: string | readonly string[],
  // agents-js's logger is looked up only when there is something to say: it throws before init.
  log: LogFn = (level, msg, fields) => agentsLog()[level](fields ?? {}, msg),
): Promise<Partial<DispatchMetadata>> {
  if (!raw) return {};
  const opened = await openDispatchMetadata(raw, room, apiSecrets);
  if (opened.ok) return opened.metadata;
  log('warn', 'ignoring dispatch metadata: config defaults apply', { problem: opened.problem });
  return {};
}
