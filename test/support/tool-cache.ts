import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where the tests' tools live outside the clone (the LiveKit server, the Python client's venv,
 * the fleet bench's store), so CI builds each once per machine: ~/.cache/livekit-voice-calls/…,
 * as .ci/run and scripts/*.sh find them (`${XDG_CACHE_HOME:-$HOME/.cache}`: an empty one is unset).
 */
export function toolCache(...parts: string[]): string {
  return join(
    process.env.XDG_CACHE_HOME || join(homedir(), '.cache'),
    'livekit-voice-calls',
    ...parts,
  );
}
