import { initializeLogger, voice } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  decodeGreeting,
  encodeGreeting,
  GREETING_AUDIO_WAIT_MS,
  greet,
  greetingAudio,
  greetingCacheDir,
} from '../../agent/voice/greeting.ts';
import { startOpenAIStandIn, TTS_MS_PER_CHAR, type StandIn } from '../support/openai-stand-in.ts';

let standIn: StandIn;
beforeAll(async () => {
  initializeLogger({ pretty: false, level: 'warn' });
  standIn = await startOpenAIStandIn();
});
/** Every directory a test makes, in a temp dir of its own: nothing is left in the real /tmp. */
const made: string[] = [];
const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'greeting-test-'));
  made.push(dir);
  return dir;
};
afterAll(async () => {
  await standIn.close();
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe('the fixed greeting', () => {
  it('is synthesised once per host and voice, then replayed from the cache file', async () => {
    const dir = freshDir();
    const tts = new openai.TTS({ apiKey: 'sk-local', baseURL: standIn.url });
    const speechRequests = () => standIn.requests.filter((r) => r.path.endsWith('/audio/speech'));
    const before = speechRequests().length;
    const text = 'Hello! How can I help you today?';
    const first = await greetingAudio(tts, text, 'tts-1|alloy|a', dir);
    expect(speechRequests().length - before).toBe(1);
    // The stand-in speaks 40 ms per character at 24 kHz mono (the plugin frames it in 100 ms).
    expect(first.sampleRate).toBe(24_000);
    const spoken = (text.length * TTS_MS_PER_CHAR * 24_000) / 1000;
    expect(first.samples.length).toBeGreaterThan(spoken - 2400);
    expect(first.samples.length).toBeLessThanOrEqual(spoken);
    expect(readdirSync(dir).filter((f) => f.endsWith('.pcm'))).toHaveLength(1);
    // Another job process of the same host: no TTS request, the same audio.
    vi.resetModules(); // a fresh module: no in-memory copy, as in another job process
    const { greetingAudio: inAnotherProcess } = await import('../../agent/voice/greeting.ts');
    const replayed = await inAnotherProcess(tts, text, 'tts-1|alloy|a', dir);
    expect(speechRequests().length - before).toBe(1);
    expect(Buffer.from(replayed.samples.buffer).equals(Buffer.from(first.samples.buffer))).toBe(
      true,
    );
    // Another voice is another greeting.
    await greetingAudio(tts, text, 'tts-1|nova|a', dir);
    expect(speechRequests().length - before).toBe(2);
  });

  it('is spoken by the TTS when its audio is late, and not at all once the call is ending', async () => {
    vi.useFakeTimers();
    try {
      const said: { text: string; audio: boolean }[] = [];
      const session = {
        say: (text: string, o: { audio?: unknown } = {}) => said.push({ text, audio: !!o.audio }),
      } as never;
      const never = new Promise<never>(() => {});
      const late = greet(session, { text: 'Hello!', audio: never });
      await vi.advanceTimersByTimeAsync(GREETING_AUDIO_WAIT_MS);
      await late;
      expect(said).toEqual([{ text: 'Hello!', audio: false }]);
      const ending = greet(session, { text: 'Hello!', audio: never }, () => true);
      await vi.advanceTimersByTimeAsync(GREETING_AUDIO_WAIT_MS);
      await ending;
      expect(said).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('the greeting cache is trusted only when it is ours and whole', () => {
  const text = 'Welcome to the planted greeting test.';
  const tts = () => new openai.TTS({ apiKey: 'sk-local', baseURL: standIn.url });
  const speechRequests = () => standIn.requests.filter((r) => r.path.endsWith('/audio/speech'));
  const digestOf = (key: string) => createHash('sha256').update(`${key}\n${text}`).digest();
  const fileOf = (key: string) => `${digestOf(key).toString('hex').slice(0, 32)}.pcm`;
  /** What an attacker plants: 16 kHz mono, full-scale samples (a loud tone the caller would hear). */
  const loud = { sampleRate: 16_000, channels: 1, samples: new Int16Array(16_000).fill(32_000) };
  /** The cache file format before it named its greeting: rate and channels, then samples. */
  const legacy = (sampleRate: number) => {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(sampleRate, 0);
    head.writeUInt32LE(1, 4);
    return Buffer.concat([head, Buffer.alloc(32_000, 0x7f)]);
  };
  /** Asks for the greeting in a fresh job process (nothing in memory); says whether the TTS ran. */
  async function fetchGreeting(key: string, dir?: string) {
    vi.resetModules();
    const { greetingAudio: fresh } = await import('../../agent/voice/greeting.ts');
    const before = speechRequests().length;
    const audio = await fresh(tts(), text, key, dir);
    return { audio, synthesised: speechRequests().length - before === 1 };
  }

  it('a file planted under the predictable name in the shared temp dir is never played', async () => {
    const key = 'tts-1|alloy|planted';
    // The temp dir, as this host's job processes see it (a fresh one: the real /tmp is not
    // touched). Another user got there first: the shared dir is theirs and anyone may write it.
    const temp = freshDir();
    const shared = join(temp, 'livekit-voice-calls-greetings');
    mkdirSync(shared, { mode: 0o777 });
    chmodSync(shared, 0o777); // past the umask
    writeFileSync(join(shared, fileOf(key)), legacy(16_000));
    const { audio, synthesised } = await fetchGreeting(key, greetingCacheDir(temp));
    expect(synthesised).toBe(true); // synthesised, not read from the plant
    expect(audio.sampleRate).toBe(24_000);
    // And the cache it did write lives in a directory only this user can enter.
    expect(greetingCacheDir(temp)).not.toBe(shared);
    const own = statSync(greetingCacheDir(temp));
    expect(own.mode & 0o077).toBe(0);
    expect(own.uid).toBe(process.getuid!());
    expect(greetingCacheDir()).toBe(greetingCacheDir(tmpdir())); // the default is the same rule
  });

  it('a cache directory someone else made (or opened to others) is not read, even with a well-formed file for this very greeting', async () => {
    const key = 'tts-1|alloy|hijacked';
    const dir = join(freshDir(), 'cache');
    mkdirSync(dir, { mode: 0o777 });
    chmodSync(dir, 0o777); // past the umask
    if (process.getuid!() === 0) chownSync(dir, 65_534, 65_534); // as root: really another user's
    writeFileSync(join(dir, fileOf(key)), encodeGreeting(loud, digestOf(key)));
    const { audio, synthesised } = await fetchGreeting(key, dir);
    expect(synthesised).toBe(true);
    expect(audio.sampleRate).toBe(24_000);
  });

  it.runIf(process.getuid?.() === 0)(
    "a well-formed file for this very greeting in this user's own directory, but owned by another user (hard-linked or moved in), is not played",
    async () => {
      const key = 'tts-1|alloy|foreign-owner';
      const dir = join(freshDir(), 'cache');
      mkdirSync(dir, { mode: 0o700 });
      const file = join(dir, fileOf(key));
      writeFileSync(file, encodeGreeting(loud, digestOf(key)), { mode: 0o644 });
      chownSync(file, 65_534, 65_534);
      const { audio, synthesised } = await fetchGreeting(key, dir);
      expect(synthesised).toBe(true);
      expect(audio.sampleRate).toBe(24_000);
    },
  );

  it('a cache file that says 0 Hz is discarded and the greeting synthesised again', async () => {
    const dir = freshDir();
    const key = 'tts-1|alloy|zero-rate';
    // 0 Hz: 20 ms frames of nothing, for ever. In the old format, and in the current one.
    for (const zero of [legacy(0), encodeGreeting({ ...loud, sampleRate: 0 }, digestOf(key))]) {
      writeFileSync(join(dir, fileOf(key)), zero);
      const { audio, synthesised } = await fetchGreeting(key, dir);
      expect(synthesised).toBe(true);
      expect(audio.sampleRate).toBe(24_000);
      // Replaced by the good one, which the next job replays.
      expect((await fetchGreeting(key, dir)).synthesised).toBe(false);
    }
  });

  it('a file holding another greeting, or cut short, is discarded and synthesised again', async () => {
    const dir = freshDir();
    const key = 'tts-1|alloy|swapped';
    const good = encodeGreeting(loud, digestOf(key));
    for (const wrong of [
      encodeGreeting(loud, digestOf('tts-1|nova|another')), // renamed from another greeting
      good.subarray(0, good.length - 2), // cut short
      Buffer.concat([good, Buffer.alloc(2)]), // longer than its header says
    ]) {
      writeFileSync(join(dir, fileOf(key)), wrong);
      const { audio, synthesised } = await fetchGreeting(key, dir);
      expect(synthesised).toBe(true);
      expect(audio.sampleRate).toBe(24_000);
    }
  });

  it.each([
    ['a sample rate below telephony', { sampleRate: 4_000 }, /sample rate/],
    ['a sample rate beyond any TTS', { sampleRate: 1_000_000 }, /sample rate/],
    ['no channels', { channels: 0 }, /channels/],
    ['nine channels', { channels: 9 }, /channels/],
    ['no samples', { samples: new Int16Array(0) }, /samples/],
  ])('reads no audio with %s', (_name, change, problem) => {
    const digest = digestOf('k');
    expect(() => decodeGreeting(encodeGreeting({ ...loud, ...change }, digest), digest)).toThrow(
      problem,
    );
  });
});

describe('greeting while the session goes away', () => {
  it('does not reject when the session closes during the wait for the cached audio (a job would take the crash path)', async () => {
    const session = new voice.AgentSession({
      tts: new openai.TTS({ apiKey: 'sk-local', baseURL: standIn.url }),
    });
    await session.start({ agent: new voice.Agent({ instructions: 'Be brief.' }) });
    let deliver!: (pcm: { sampleRate: number; channels: number; samples: Int16Array }) => void;
    const audio = new Promise<Parameters<typeof deliver>[0]>((r) => (deliver = r));
    // The lifecycle has not heard of the close yet: agents-js emits Close only once it is done.
    const greeting = greet(session, { text: 'Hello!', audio }, () => false);
    const closing = session.close();
    await new Promise((r) => setImmediate(r)); // closing now: say() throws
    deliver({ sampleRate: 24_000, channels: 1, samples: new Int16Array(480) });
    await expect(greeting).resolves.toBeUndefined();
    await closing;
  });
});
