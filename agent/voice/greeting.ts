import { log as agentsLog, type tts as ttsNs, type voice } from '@livekit/agents';
import { AudioFrame } from '@livekit/rtc-node';
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReadableStream } from 'node:stream/web';
import type { AgentConfig } from '../config.ts';
import { errorMessage } from '../../wire-contract/index.ts';

/** What the LLM is asked when the greeting is not fixed (AGENT_GREETING unset). */
export const GREETING_INSTRUCTIONS = 'Greet the user in one short sentence and offer help.';

type Pcm = { sampleRate: number; channels: number; samples: Int16Array };

const inMemory = new Map<string, Promise<Pcm>>();

/**
 * Where this user's job processes share greetings: in the temp dir, but a directory of this
 * user's own (created 0700, checked before each use), never a shared one where another local user
 * could plant audio for callers to hear.
 */
export function greetingCacheDir(base = tmpdir()): string {
  return join(base, `livekit-voice-calls-greetings-${process.getuid?.() ?? 'user'}`);
}

/**
 * A fixed greeting's audio, synthesised once per host and voice and replayed: the first job that
 * needs it asks the TTS and leaves the PCM in a file in this user's own cache directory; every
 * later job process reads the file instead of waiting for the TTS. `key` names the voice (model,
 * voice, endpoint) so a change of voice never replays the old one. A file is played only when it
 * is whole and names this very greeting inside; anything else is discarded and synthesised again.
 */
export function greetingAudio(
  tts: ttsNs.TTS,
  text: string,
  key: string,
  dir = greetingCacheDir(),
): Promise<Pcm> {
  const digest = createHash('sha256').update(`${key}\n${text}`).digest();
  const id = digest.toString('hex').slice(0, 32);
  let audio = inMemory.get(id);
  if (!audio) {
    const path = join(dir, `${id}.pcm`);
    audio = Promise.resolve()
      .then(() => load(dir, path, digest))
      .catch(async (err: unknown) => {
        if (!(err instanceof NotCached))
          agentsLog().debug({ path, problem: String(err) }, 'greeting cache skipped');
        const pcm = await synthesize(tts, text);
        try {
          privateDir(dir, true);
          const tmp = join(dir, `${id}.${process.pid}.tmp`);
          writeFileSync(tmp, encodeGreeting(pcm, digest), { mode: 0o600, flag: 'w' });
          renameSync(tmp, path); // atomic: a reader never sees half a file
        } catch (err) {
          // No cache this time: the next job synthesises again.
          agentsLog().warn({ dir, problem: String(err) }, 'greeting audio not cached');
        }
        return pcm;
      });
    audio.catch(() => inMemory.delete(id));
    inMemory.set(id, audio);
  }
  return audio;
}

/** How long a call waits for the cached greeting audio before the TTS speaks the text instead. */
export const GREETING_AUDIO_WAIT_MS = 1500;

/**
 * Greets the caller: a fixed greeting is played from its cached audio (no LLM, no TTS wait); with
 * none, the LLM greets as before. If the cached audio is not there in time (a slow or hung TTS
 * while it was being made), the TTS speaks the text. Nothing is said once `cancelled()` is true
 * (the call began to end meanwhile).
 */
export async function greet(
  session: voice.AgentSession,
  fixed: { text: string; audio: Promise<Pcm> } | undefined,
  cancelled: () => boolean = () => false,
): Promise<void> {
  try {
    if (!fixed) {
      if (!cancelled()) session.generateReply({ instructions: GREETING_INSTRUCTIONS });
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const pcm = await Promise.race([
      fixed.audio.catch(() => undefined),
      new Promise<undefined>(
        (r) => (timer = setTimeout(() => r(undefined), GREETING_AUDIO_WAIT_MS)),
      ),
    ]).finally(() => clearTimeout(timer));
    if (cancelled()) return;
    session.say(fixed.text, pcm ? { audio: frames(pcm) } : {});
  } catch (err) {
    // The session closed meanwhile (say throws while it closes; its Close event, which ends the
    // call, comes only once the close is done): nobody to greet, and nothing to crash the job.
    agentsLog().debug({ error: errorMessage(err) }, 'greeting not spoken: the session is closing');
  }
}

/** 20 ms frames of the PCM, as agents-js plays a `say`'s pre-made audio. */
function frames(pcm: Pcm): ReadableStream<AudioFrame> {
  // Whole frames of at least one sample: a bad rate must end the stream, not loop on empty frames.
  const per = Math.max(1, Math.floor(pcm.sampleRate / 50)) * Math.max(1, pcm.channels);
  let at = 0;
  return new ReadableStream<AudioFrame>({
    pull(controller) {
      if (at >= pcm.samples.length) return controller.close();
      const chunk = pcm.samples.slice(at, at + per);
      at += per;
      controller.enqueue(
        new AudioFrame(chunk, pcm.sampleRate, pcm.channels, chunk.length / pcm.channels),
      );
    },
  });
}

async function synthesize(tts: ttsNs.TTS, text: string): Promise<Pcm> {
  const parts: Int16Array[] = [];
  let sampleRate = tts.sampleRate;
  let channels = tts.numChannels;
  for await (const audio of tts.synthesize(text)) {
    sampleRate = audio.frame.sampleRate;
    channels = audio.frame.channels;
    parts.push(audio.frame.data.slice());
  }
  const samples = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    samples.set(p, offset);
    offset += p.length;
  }
  if (!samples.length) throw new Error('the TTS returned no audio for the greeting');
  return { sampleRate, channels, samples };
}

/**
 * The cache file: a magic, the SHA-256 of the greeting it holds (voice key and text), sample
 * rate, channels and sample count (u32 LE each), then 16-bit LE samples, exactly that many.
 */
const MAGIC = Buffer.from('LKVCGRT1');
const HEADER_BYTES = MAGIC.length + 32 + 12;
/** What a TTS answers at: telephony's 8 kHz up to studio's 96 kHz. */
const MIN_RATE = 8_000;
const MAX_RATE = 96_000;
const MAX_CHANNELS = 2;
/** A greeting is one sentence of at most 500 characters: two minutes is far beyond any. */
const MAX_SECONDS = 120;

export function encodeGreeting(pcm: Pcm, digest: Buffer): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(head, 0);
  digest.copy(head, MAGIC.length, 0, 32);
  head.writeUInt32LE(pcm.sampleRate, MAGIC.length + 32);
  head.writeUInt32LE(pcm.channels, MAGIC.length + 36);
  head.writeUInt32LE(pcm.samples.length, MAGIC.length + 40);
  const body = Buffer.alloc(pcm.samples.length * 2);
  for (let i = 0; i < pcm.samples.length; i++) body.writeInt16LE(pcm.samples[i]!, i * 2);
  return Buffer.concat([head, body]);
}

/** The greeting in `buf` if it is a whole file of the greeting `digest` names, with sane audio. */
export function decodeGreeting(buf: Buffer, digest: Buffer): Pcm {
  if (buf.length < HEADER_BYTES || !buf.subarray(0, MAGIC.length).equals(MAGIC))
    throw new Error('not a greeting cache file');
  if (!buf.subarray(MAGIC.length, MAGIC.length + 32).equals(digest.subarray(0, 32)))
    throw new Error('holds another greeting');
  const sampleRate = buf.readUInt32LE(MAGIC.length + 32);
  const channels = buf.readUInt32LE(MAGIC.length + 36);
  const count = buf.readUInt32LE(MAGIC.length + 40);
  if (sampleRate < MIN_RATE || sampleRate > MAX_RATE)
    throw new Error(`sample rate ${sampleRate} Hz`);
  if (channels < 1 || channels > MAX_CHANNELS) throw new Error(`${channels} channels`);
  if (count === 0 || count % channels !== 0 || count > sampleRate * channels * MAX_SECONDS)
    throw new Error(`${count} samples`);
  if (buf.length !== HEADER_BYTES + count * 2)
    throw new Error(`${buf.length} bytes for ${count} samples`);
  const samples = new Int16Array(count);
  for (let i = 0; i < count; i++) samples[i] = buf.readInt16LE(HEADER_BYTES + i * 2);
  return { sampleRate, channels, samples };
}

/** No cache file yet: the normal first run, not worth a log line. */
class NotCached extends Error {}

/**
 * Whether `dir` is a directory only this user can write: not a link, owned by this user, no
 * write (or read) access for anyone else. With `create`, it is made so (0700) if missing.
 */
function privateDir(dir: string, create = false): void {
  if (create) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory()) throw new Error('the greeting cache is not a directory');
  if (uid !== undefined && st.uid !== uid)
    throw new Error('the greeting cache directory belongs to another user');
  if ((st.mode & 0o077) !== 0)
    throw new Error('the greeting cache directory is open to other users');
}

function load(dir: string, path: string, digest: Buffer): Pcm {
  try {
    privateDir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotCached();
    throw err;
  }
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotCached();
    throw err;
  }
  let buf: Buffer;
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > HEADER_BYTES + MAX_RATE * MAX_CHANNELS * MAX_SECONDS * 2)
      throw new Error('not a greeting cache file');
    // The directory is this user's, but a file in it need not be: one hard-linked in by another
    // user (no protected_hardlinks), or moved in by root. Only this user's own files are played.
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid)
      throw new Error('the greeting cache file belongs to another user');
    buf = Buffer.alloc(st.size);
    let at = 0;
    while (at < buf.length) {
      const n = readSync(fd, buf, at, buf.length - at, at);
      if (n === 0) break;
      at += n;
    }
    buf = buf.subarray(0, at);
  } finally {
    closeSync(fd);
  }
  try {
    return decodeGreeting(buf, digest);
  } catch (err) {
    // Ours but wrong (cut short, another greeting's, corrupt): gone, so it is made again.
    try {
      unlinkSync(path);
    } catch {
      /* the rename of a good one replaces it anyway */
    }
    throw err;
  }
}

/** Names the voice a greeting was synthesised with: model, voice and endpoint. */
export function greetingVoiceKey(config: AgentConfig, voiceName?: string): string {
  return `${config.TTS_MODEL}|${voiceName ?? config.TTS_VOICE}|${config.OPENAI_BASE_URL}`;
}

/**
 * For a job process's prewarm: synthesises (or loads) the fixed greeting in the default voice
 * before any call, so the first call of a fresh worker replays it too. Not awaited by agents-js's
 * prewarm budget: it runs on in the background, and a failure only means the call synthesises it.
 */
export function prewarmGreeting(
  config: AgentConfig,
  tts: ttsNs.TTS | undefined,
  env: Record<string, string | undefined> = process.env,
): void {
  const text = env.AGENT_GREETING?.trim();
  if (!text || !tts || config.AGENT_MODEL_MODE === 'realtime') return;
  greetingAudio(tts, text.slice(0, 500), greetingVoiceKey(config)).catch(() => {});
}

/**
 * AGENT_GREETING (a fixed first sentence) for a pipeline call, with its audio on the way; none for
 * a realtime model (it speaks for itself) or when unset (the LLM greets).
 */
export function fixedGreeting(
  session: voice.AgentSession,
  voiceKey: string,
  env: Record<string, string | undefined> = process.env,
): { text: string; audio: Promise<Pcm> } | undefined {
  const text = env.AGENT_GREETING?.trim();
  const tts = session.tts;
  if (!text || !tts) return undefined;
  const audio = greetingAudio(tts, text.slice(0, 500), voiceKey);
  audio.catch(() => {}); // greet() falls back to the TTS
  return { text, audio };
}
