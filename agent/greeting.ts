import { type tts as ttsNs, type voice } from '@livekit/agents';
import { AudioFrame } from '@livekit/rtc-node';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ReadableStream } from 'node:stream/web';
import type { AgentConfig } from './config.ts';
import { join } from 'node:path';

/** What the LLM is asked when the greeting is not fixed (AGENT_GREETING unset). */
export const GREETING_INSTRUCTIONS = 'Greet the user in one short sentence and offer help.';

type Pcm = { sampleRate: number; channels: number; samples: Int16Array };

const inMemory = new Map<string, Promise<Pcm>>();

/**
 * A fixed greeting's audio, synthesised once per host and voice and replayed: the first job that
 * needs it asks the TTS and leaves the PCM in a file beside the worker (os.tmpdir()); every later
 * job process reads the file instead of waiting for the TTS. `key` names the voice (model, voice,
 * endpoint) so a change of voice never replays the old one.
 */
export function greetingAudio(
  tts: ttsNs.TTS,
  text: string,
  key: string,
  dir = join(tmpdir(), 'livekit-voice-calls-greetings'),
): Promise<Pcm> {
  const id = createHash('sha256').update(`${key}\n${text}`).digest('hex').slice(0, 32);
  let audio = inMemory.get(id);
  if (!audio) {
    audio = load(join(dir, `${id}.pcm`)).catch(async () => {
      const pcm = await synthesize(tts, text);
      try {
        mkdirSync(dir, { recursive: true });
        const tmp = join(dir, `${id}.${process.pid}.tmp`);
        writeFileSync(tmp, encode(pcm));
        renameSync(tmp, join(dir, `${id}.pcm`)); // atomic: a reader never sees half a file
      } catch {
        /* no cache this time: the next job synthesises again */
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
  if (!fixed) {
    if (!cancelled()) session.generateReply({ instructions: GREETING_INSTRUCTIONS });
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const pcm = await Promise.race([
    fixed.audio.catch(() => undefined),
    new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), GREETING_AUDIO_WAIT_MS))),
  ]).finally(() => clearTimeout(timer));
  if (cancelled()) return;
  session.say(fixed.text, pcm ? { audio: frames(pcm) } : {});
}

/** 20 ms frames of the PCM, as agents-js plays a `say`'s pre-made audio. */
function frames(pcm: Pcm): ReadableStream<AudioFrame> {
  const per = (pcm.sampleRate / 50) * pcm.channels;
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

function encode(pcm: Pcm): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(pcm.sampleRate, 0);
  head.writeUInt32LE(pcm.channels, 4);
  return Buffer.concat([
    head,
    Buffer.from(pcm.samples.buffer, pcm.samples.byteOffset, pcm.samples.byteLength),
  ]);
}

async function load(path: string): Promise<Pcm> {
  const buf = readFileSync(path);
  if (buf.length < 10) throw new Error('empty greeting cache');
  const body = buf.subarray(8);
  const samples = new Int16Array(body.length >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = body.readInt16LE(i * 2);
  return { sampleRate: buf.readUInt32LE(0), channels: buf.readUInt32LE(4), samples };
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
