import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Real speech audio for the voice tests: espeak-ng renders the words, sox resamples them to 48 kHz
 * mono 16-bit (what WebRTC sends) and pads silence before and after. Files are cached per text.
 */
export const SPEECH_SAMPLE_RATE = 48_000;
/** sox's output format for every file here: 48 kHz, mono, 16-bit. */
const FORMAT = ['-r', String(SPEECH_SAMPLE_RATE), '-c', '1', '-b', '16'];

export function speechToolsMissing(): string | undefined {
  for (const tool of ['espeak-ng', 'sox']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'pipe' });
    } catch {
      return `${tool} (Debian: apt-get install espeak-ng sox)`;
    }
  }
  return undefined;
}

export function renderSpeech(
  dir: string,
  text: string,
  { leadSeconds = 0, tailSeconds = 1 }: { leadSeconds?: number; tailSeconds?: number } = {},
): string {
  mkdirSync(dir, { recursive: true });
  const slug = `${text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 40)}-${leadSeconds}-${tailSeconds}`;
  const out = join(dir, `${slug}.wav`);
  if (existsSync(out)) return out;
  const raw = join(dir, `${slug}.espeak.wav`);
  execFileSync('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', raw, text]);
  execFileSync('sox', [raw, ...FORMAT, out, 'pad', String(leadSeconds), String(tailSeconds)]);
  return out;
}

/** Silence of `seconds`, same format: a microphone that is on and hears nothing. */
export function renderSilence(dir: string, seconds: number): string {
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `silence-${seconds}.wav`);
  if (!existsSync(out)) execFileSync('sox', ['-n', ...FORMAT, out, 'trim', '0', String(seconds)]);
  return out;
}

export type Pcm = { sampleRate: number; channels: number; samples: Int16Array };

/** Reads a PCM16 WAV (any chunk order); throws on anything else. */
export function parseWav(buf: Buffer): Pcm {
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE')
    throw new Error('not a WAV file');
  let offset = 12;
  let fmt: { channels: number; sampleRate: number; bits: number } | undefined;
  while (offset + 8 <= buf.length) {
    const id = buf.toString('ascii', offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ')
      fmt = {
        channels: buf.readUInt16LE(body + 2),
        sampleRate: buf.readUInt32LE(body + 4),
        bits: buf.readUInt16LE(body + 14),
      };
    if (id === 'data') {
      if (!fmt || fmt.bits !== 16) throw new Error('only 16-bit PCM WAV is supported');
      const end = Math.min(body + size, buf.length);
      const samples = new Int16Array(
        buf.buffer.slice(buf.byteOffset + body, buf.byteOffset + end - ((end - body) % 2)),
      );
      return { sampleRate: fmt.sampleRate, channels: fmt.channels, samples };
    }
    offset = body + size + (size % 2);
  }
  throw new Error('WAV has no data chunk');
}

export function readWav(path: string): Pcm {
  return parseWav(readFileSync(path));
}

/**
 * How much of the audio is louder than a speech floor: the milliseconds of 20 ms windows whose RMS
 * is above -40 dBFS. Silence and line noise stay below it; espeak-ng speech is well above.
 */
export function loudMilliseconds(pcm: Pcm, floorDbfs = -40): number {
  const window = Math.max(1, Math.round((pcm.sampleRate * pcm.channels) / 50));
  const floor = 32768 * 10 ** (floorDbfs / 20);
  let loud = 0;
  for (let start = 0; start + window <= pcm.samples.length; start += window) {
    let sum = 0;
    for (let i = start; i < start + window; i++) sum += pcm.samples[i]! * pcm.samples[i]!;
    if (Math.sqrt(sum / window) > floor) loud++;
  }
  return loud * 20;
}
