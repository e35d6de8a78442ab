import { DisconnectReason } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallClient } from '../support/call-client.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { MIN_SPEECH_MS, textOf, type ChatMessage } from '../support/openai-stand-in.ts';
import { renderSpeech } from '../support/speech.ts';

/**
 * The spoken path, end to end: real speech rendered by espeak-ng is the caller's microphone; the
 * agent (audio input on, as deployed) hears it through LiveKit, its VAD ends the turn, the real STT
 * plugin uploads the audio to the stand-in (which answers only for audio that holds speech), and
 * the model's reply ends the call.
 */
const clients: CallClient[] = [];
const VOICE_AGENT = 'voice-agent-audio';

const system = systemForThisFile('voice tests', {
  needs: ['speech'],
  edgeVars: { AGENT_ALLOWED_NAMES: `voice-agent,${VOICE_AGENT}` },
});
beforeAll(async () => {
  if (system.skipped) return;
  await system.startAgent('agent-audio', { AGENT_NAME: VOICE_AGENT, AGENT_AUDIO_INPUT: 'true' });
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.leave()));
});

async function voiceCaller(): Promise<CallClient> {
  const client = new CallClient();
  clients.push(client);
  await client.join(system.edge.url, '', {
    room_config: { agents: [{ agent_name: VOICE_AGENT }] },
  });
  await client.publishMicrophone();
  return client;
}
const speech = (text: string) => renderSpeech(`${system.dir}/speech`, text);

describe.skipIf(system.skipped)('a spoken call, against the real LiveKit server', () => {
  it('the caller says goodbye out loud: VAD ends the turn, STT hears it, end_call plays the goodbye and deletes the room', async () => {
    const c = await voiceCaller();
    await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
    const words = 'Thanks, that is all. Goodbye!';
    system.openai.utterances.push(words);
    const before = system.openai.transcriptions.length;
    await c.speak(speech(words));
    expect(await c.waitForDisconnect(30_000)).toBe(DisconnectReason.ROOM_DELETED);
    const uploads = system.openai.transcriptions.slice(before);
    expect(uploads.filter((u) => u.text === words)).toHaveLength(1);
    expect(uploads[0]!.speechMs).toBeGreaterThanOrEqual(MIN_SPEECH_MS);
    const heard = await c.waitForEvent(
      'transcription',
      (d) => d.from === c.identity && /Goodbye/.test(d.text),
    );
    const goodbye = await c.waitForEvent('transcription-chunk', (d) =>
      /Goodbye, take care/.test(d.text),
    );
    expect(heard.at).toBeLessThan(goodbye.at);
    const call = await system.reportedCall(c.roomName);
    expect(call.end_reason).toBe('agent_end_call');
    expect(call.report.transcript.map((t: any) => `${t.role}: ${t.text}`)).toEqual([
      'assistant: Hello! How can I help you today?',
      'user: Thanks, that is all. Goodbye!',
      'assistant: Goodbye, take care!',
    ]);
    expect(call.report.usage.stt_seconds).toBeGreaterThan(0);
    // The caller's one turn, timed by agents-js's own metrics, in the report and GET /calls/:room.
    const turns = call.report.turns as Record<string, number>[];
    expect(turns).toHaveLength(1);
    const [turn] = turns;
    for (const key of ['eou_delay_ms', 'transcription_delay_ms', 'llm_ttft_ms', 'tts_ttfb_ms'])
      expect(turn![key], key).toBeGreaterThanOrEqual(0);
    // The turn ends after the words do, and the answer is heard after the turn ended.
    expect(turn!.eou_delay_ms).toBeGreaterThan(0);
    expect(turn!.eou_delay_ms).toBeGreaterThanOrEqual(turn!.transcription_delay_ms!);
    expect(turn!.e2e_ms).toBeGreaterThan(turn!.eou_delay_ms!);
    expect(call.report.latency).toMatchObject({
      turns: 1,
      e2e_ms: { p50: turn!.e2e_ms, p95: turn!.e2e_ms },
    });
  });

  it('the caller pauses ~600 ms mid-sentence: one answer to the whole sentence', async () => {
    const c = await voiceCaller();
    await c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
    const [first, second] = ['Tell me one thing', 'about the weather'];
    // The pause is silence, so the VAD hears two stretches of speech: the STT gets two uploads.
    system.openai.utterances.push(first, second);
    const before = system.openai.transcriptions.length;
    // espeak-ng ends a rendering with ~0.4 s of its own silence: 0.2 s more makes a ~0.6 s pause.
    await c.speak(renderSpeech(`${system.dir}/speech`, first, { tailSeconds: 0.2 }));
    await c.speak(renderSpeech(`${system.dir}/speech`, second, { tailSeconds: 1 }));
    const answer = await c.waitForEvent(
      'transcription',
      (d) => d.from !== c.identity && /^You said:/.test(d.text),
      30_000,
    );
    expect((answer.detail as { text: string }).text).toBe(`You said: ${first} ${second}`);
    expect(
      system.openai.transcriptions
        .slice(before)
        .filter((u) => u.text !== '')
        .map((u) => u.text),
    ).toEqual([first, second]);
    await c.leave();
    const call = await system.reportedCall(c.roomName);
    expect(call.report.transcript.map((t: any) => `${t.role}: ${t.text}`)).toEqual([
      'assistant: Hello! How can I help you today?',
      `user: ${first} ${second}`,
      `assistant: You said: ${first} ${second}`,
    ]);
    expect(call.report.turns).toHaveLength(1);
  });

  it('the caller talks over the greeting: the greeting stops where it was cut, and the agent answers what was said', async () => {
    const greeting =
      `Hello! ${'I can help with bookings, questions about your order, and anything else you need today. '.repeat(3)}`.trim();
    const longGreeting = {
      name: 'long-greeting',
      when: (ms: ChatMessage[]) =>
        /greet the user/i.test(textOf(ms.at(-1))) && ms.at(-1)?.role !== 'user',
      reply: { content: greeting },
    };
    system.openai.rules.unshift(longGreeting);
    try {
      const c = await voiceCaller();
      // agents-js keeps the first 3 s of a call's speech uninterruptible (echo-cancellation warm-up);
      // captions follow playout, so 120 characters in (~4.8 s of audio) the warm-up is over.
      await c.waitForEvent('transcription-chunk', (d) => d.text.length >= 120, 30_000);
      const words = 'Wait a moment please';
      system.openai.utterances.push(words);
      const spoke = c.speak(speech(words));
      const cut = await c.waitForEvent(
        'transcription',
        (d) => d.from !== c.identity && d.text.startsWith('Hello!'),
        30_000,
      );
      await spoke;
      const cutText = (cut.detail as { text: string }).text;
      expect(cutText.length).toBeLessThan(greeting.length);
      expect(greeting.startsWith(cutText.trim())).toBe(true);
      await c.waitForEvent('transcription', (d) => d.text === `You said: ${words}`, 30_000);
      await c.leave();
    } finally {
      system.openai.rules.splice(system.openai.rules.indexOf(longGreeting), 1);
    }
  });
});
