import { initializeLogger } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { GREETING_AUDIO_WAIT_MS, greet, greetingAudio } from '../../agent/greeting.ts';
import { startOpenAIStandIn, TTS_MS_PER_CHAR, type StandIn } from '../support/openai-stand-in.ts';

let standIn: StandIn;
beforeAll(async () => {
  initializeLogger({ pretty: false, level: 'warn' });
  standIn = await startOpenAIStandIn();
});
afterAll(() => standIn.close());

describe('the fixed greeting', () => {
  it('is synthesised once per host and voice, then replayed from the cache file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'greeting-test-'));
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
    const { greetingAudio: inAnotherProcess } = await import('../../agent/greeting.ts');
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
