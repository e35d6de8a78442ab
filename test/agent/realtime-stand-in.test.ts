import { initializeLogger, llm, type metrics } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { AudioFrame } from '@livekit/rtc-node';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import {
  attachRealtimeStandIn,
  REALTIME_MS_PER_CHAR,
  REALTIME_SAMPLE_RATE,
  type RealtimeStandIn,
} from '../support/openai-realtime-stand-in.ts';

// The real plugin's RealtimeModel, against the realtime stand-in over a real WebSocket.

type Session = ReturnType<openai.realtime.RealtimeModel['session']>;
type Spoken = { text: string; frames: AudioFrame[]; samples: number };

/** Reads a generation to its end: every message's text and audio, and its function calls. */
async function readGeneration(gen: llm.GenerationCreatedEvent) {
  const messages: Spoken[] = [];
  const calls: llm.FunctionCall[] = [];
  const readMessages = (async () => {
    for await (const msg of gen.messageStream) {
      const spoken: Spoken = { text: '', frames: [], samples: 0 };
      messages.push(spoken);
      await Promise.all([
        (async () => {
          for await (const t of msg.textStream) spoken.text += typeof t === 'string' ? t : t.text;
        })(),
        (async () => {
          for await (const f of msg.audioStream) {
            spoken.frames.push(f);
            spoken.samples += f.samplesPerChannel;
          }
        })(),
      ]);
    }
  })();
  const readCalls = (async () => {
    for await (const call of gen.functionStream) calls.push(call);
  })();
  await Promise.all([readMessages, readCalls]);
  return { messages, calls };
}

const endCallTools = () =>
  new llm.ToolContext({
    end_call: llm.tool({
      description: 'End the call.',
      parameters: z.object({}),
      execute: async () => 'The call is ending.',
    }),
  });

describe('OpenAI Realtime stand-in, driven by the real RealtimeModel', () => {
  let server: Server;
  let standIn: RealtimeStandIn;
  let session: Session;
  const usage: metrics.RealtimeModelMetrics[] = [];

  beforeAll(() => initializeLogger({ pretty: false, level: 'warn' }));

  beforeEach(async () => {
    server = createServer((_req, res) => res.writeHead(404).end());
    standIn = attachRealtimeStandIn(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const model = new openai.realtime.RealtimeModel({
      apiKey: 'sk-test',
      baseURL: `http://127.0.0.1:${port}/v1`,
      model: 'gpt-realtime',
      voice: 'marin',
    });
    session = model.session();
    usage.length = 0;
    session.on('metrics_collected', (m: metrics.RealtimeModelMetrics) => usage.push(m));
    session.on('error', () => {});
  });

  afterEach(async () => {
    await session.close();
    await standIn.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('connects to /v1/realtime?model= with the API key, and greets in paced audio', async () => {
    await session.updateInstructions('You are a friendly voice assistant.');
    const started = Date.now();
    const gen = await session.generateReply('Greet the user in one short sentence and offer help.');
    const { messages, calls } = await readGeneration(gen);
    const elapsed = Date.now() - started;

    const text = 'Hello! How can I help you today?';
    expect(calls).toEqual([]);
    expect(messages.map((m) => m.text)).toEqual([text]);
    const spoken = messages[0]!;
    expect(spoken.frames[0]!.sampleRate).toBe(REALTIME_SAMPLE_RATE);
    expect(spoken.frames[0]!.channels).toBe(1);
    expect(spoken.frames.length).toBeGreaterThan(1);
    expect(spoken.samples).toBe((text.length * REALTIME_MS_PER_CHAR * REALTIME_SAMPLE_RATE) / 1000);
    expect(spoken.frames.some((f) => f.data.some((s) => Math.abs(s) > 1000))).toBe(true);
    // Paced at real time (with a 100 ms head start): 1.28 s of audio takes more than a second.
    expect(elapsed).toBeGreaterThanOrEqual(text.length * REALTIME_MS_PER_CHAR - 200);

    const conn = standIn.connections[0]!;
    expect(conn.model).toBe('gpt-realtime');
    expect(conn.authorization).toBe('Bearer sk-test');
    expect(conn.session.instructions).toBe('You are a friendly voice assistant.');
    expect(conn.clientEvents).toEqual(['session.update', 'session.update', 'response.create']);
    expect(standIn.responses).toMatchObject([
      {
        instructions: 'Greet the user in one short sentence and offer help.',
        reply: { text },
        status: 'completed',
      },
    ]);
    // response.done carries usage that the plugin turns into metrics.
    expect(usage).toHaveLength(1);
    expect(usage[0]!.inputTokens).toBeGreaterThan(0);
    expect(usage[0]!.outputTokens).toBeGreaterThan(0);
    expect(usage[0]!.outputTokenDetails.audioTokens).toBeGreaterThan(0);
    // The assistant's reply is in the plugin's view of the conversation.
    expect(session.chatCtx.items.map((i) => i.type === 'message' && i.textContent)).toEqual([text]);
  });

  it('calls end_call on a goodbye, then says goodbye after the tool output', async () => {
    standIn.audioPacing = 0;
    await session.updateTools(endCallTools());
    const ctx = session.chatCtx.copy();
    ctx.addMessage({ role: 'user', content: 'Goodbye' });
    await session.updateChatCtx(ctx);

    const first = await readGeneration(await session.generateReply());
    expect(first.messages).toEqual([]);
    expect(first.calls).toHaveLength(1);
    const call = first.calls[0]!;
    expect(call.name).toBe('end_call');
    expect(JSON.parse(call.args)).toEqual({});
    expect(standIn.connections[0]!.session.tools.map((t) => t.name)).toEqual(['end_call']);

    // As the agents framework does: the call and its output into the context, then a reply.
    const after = session.chatCtx.copy();
    after.insert([
      llm.FunctionCall.create({ callId: call.callId, name: call.name, args: call.args }),
      llm.FunctionCallOutput.create({
        callId: call.callId,
        name: call.name,
        output: 'The call is ending.',
        isError: false,
      }),
    ]);
    await session.updateChatCtx(after);
    const second = await readGeneration(await session.generateReply());
    expect(second.calls).toEqual([]);
    expect(second.messages.map((m) => m.text)).toEqual(['Goodbye, take care!']);
    expect(second.messages[0]!.samples).toBeGreaterThan(0);

    const items = standIn.connections[0]!.items;
    expect(items.map((i) => i.type)).toContain('function_call_output');
    expect(items.at(-1)).toMatchObject({ role: 'assistant', text: 'Goodbye, take care!' });
    expect(standIn.clientEvents).toContain('conversation.item.create');
  });

  it('says a line verbatim, echoes a user, and cancels a response on interrupt', async () => {
    standIn.audioPacing = 0;
    const verbatim = await readGeneration(
      await session.generateReply('Say exactly this and nothing else: "Are you still there?"'),
    );
    expect(verbatim.messages.map((m) => m.text)).toEqual(['Are you still there?']);

    standIn.audioPacing = 1;
    const ctx = session.chatCtx.copy();
    ctx.addMessage({ role: 'user', content: 'tell me a very long story about the sea please' });
    await session.updateChatCtx(ctx);
    const gen = await session.generateReply();
    const reading = readGeneration(gen);
    await new Promise((r) => setTimeout(r, 300));
    await session.interrupt();
    const { messages } = await reading;
    const full = 'You said: tell me a very long story about the sea please';
    expect(messages).toHaveLength(1);
    expect(full.startsWith(messages[0]!.text)).toBe(true);
    expect(messages[0]!.samples).toBeLessThan((full.length * 40 * REALTIME_SAMPLE_RATE) / 1000);
    expect(standIn.responses.at(-1)).toMatchObject({ reply: { text: full }, status: 'cancelled' });
    expect(standIn.clientEvents).toContain('response.cancel');
    expect(usage.at(-1)!.cancelled).toBe(true);
  });

  it('with serverVad set, ends a spoken turn after the silence, transcribes it and answers by itself', async () => {
    standIn.serverVad = { silenceMs: 300, responseDelayMs: 100, hears: () => 'what time is it' };
    standIn.audioPacing = 0;
    const events: string[] = [];
    session.on('input_speech_started', () => events.push('speech started'));
    session.on('input_speech_stopped', () => events.push('speech stopped'));
    session.on('input_audio_transcription_completed', (ev: { transcript: string }) =>
      events.push(`heard: ${ev.transcript}`),
    );
    const generated = new Promise<llm.GenerationCreatedEvent>((r) =>
      session.once('generation_created', r),
    );
    await session.updateInstructions('You are a friendly voice assistant.');
    // 400 ms of a loud tone, then 500 ms of silence, in 20 ms frames as RoomIO sends them.
    const rate = REALTIME_SAMPLE_RATE;
    for (let ms = 0; ms < 900; ms += 20) {
      const data = new Int16Array(rate / 50);
      if (ms < 400) for (let i = 0; i < data.length; i++) data[i] = (i % 20 < 10 ? 1 : -1) * 8000;
      session.pushAudio(new AudioFrame(data, rate, 1, data.length));
    }
    const { messages } = await readGeneration(await generated);
    expect(events).toEqual(['speech started', 'speech stopped', 'heard: what time is it']);
    expect(messages.map((m) => m.text)).toEqual(['You said: what time is it']);
    expect(standIn.clientEvents).not.toContain('response.create');
  });

  it('without serverVad, spoken audio is never a turn (tests drive realtime calls by text)', async () => {
    const rate = REALTIME_SAMPLE_RATE;
    for (let ms = 0; ms < 900; ms += 20) {
      const data = new Int16Array(rate / 50).fill(ms < 400 ? 8000 : 0);
      session.pushAudio(new AudioFrame(data, rate, 1, data.length));
    }
    // Once the stand-in has all the audio, and a moment more for any turn it would have made.
    const deadline = Date.now() + 10_000;
    while ((standIn.connections[0]?.inputAudioMs ?? 0) < 880 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(standIn.connections[0]?.inputAudioMs).toBeGreaterThanOrEqual(880);
    await new Promise((r) => setTimeout(r, 300));
    expect(standIn.responses).toEqual([]);
    expect(standIn.connections[0]?.items ?? []).toEqual([]);
  });
});
