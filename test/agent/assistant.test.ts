import { initializeLogger, voice } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  Assistant,
  END_CALL_DESCRIPTION,
  goodbyeCanBeUninterruptible,
} from '../../agent/voice/assistant.ts';
import { startOpenAIStandIn, type StandIn } from '../support/openai-stand-in.ts';

// The assistant through the real OpenAI plugin, against the local OpenAI-compatible stand-in.
let standIn: StandIn;
beforeAll(async () => {
  initializeLogger({ pretty: false, level: 'warn' });
  standIn = await startOpenAIStandIn();
});
afterAll(() => standIn.close());

let session: voice.AgentSession | undefined;
afterEach(async () => {
  await session?.close();
  session = undefined;
});

/** The speech handles the session creates, in order. */
let handles: voice.SpeechHandle[] = [];

async function start() {
  const endRequests: Promise<void>[] = [];
  handles = [];
  session = new voice.AgentSession({
    llm: new openai.LLM({ apiKey: 'sk-local', baseURL: standIn.url, model: 'stand-in' }),
  });
  session.on(voice.AgentSessionEventTypes.SpeechCreated, (ev) => handles.push(ev.speechHandle));
  await session.start({ agent: new Assistant('Be brief.', (played) => endRequests.push(played)) });
  return endRequests;
}

describe('Assistant', () => {
  it('offers the model an end_call tool that says when not to use it', async () => {
    await start();
    await session!.run({ userInput: 'Hello there' }).wait();
    const request = standIn.requests
      .filter((r) => r.path.endsWith('/chat/completions'))
      .at(-1)!.body;
    const tool = request.tools.find((t: any) => t.function.name === 'end_call');
    expect(tool.function.description).toBe(END_CALL_DESCRIPTION);
    expect(END_CALL_DESCRIPTION).toMatch(/Do NOT call it on a greeting/);
  });

  it('on a goodbye: calls end_call, speaks the goodbye, and asks to end only once it has played', async () => {
    const endRequests = await start();
    const result = await session!.run({ userInput: 'Thanks, that is all. Goodbye!' }).wait();
    result.expect.nextEvent().isFunctionCall({ name: 'end_call' });
    result.expect.nextEvent().isFunctionCallOutput();
    result.expect.nextEvent().isMessage({ role: 'assistant' });
    expect(endRequests).toHaveLength(1);
    await expect(endRequests[0]).resolves.toBeUndefined();
    const goodbye = session!.history.items
      .filter((i: any) => i.type === 'message' && i.role === 'assistant')
      .at(-1) as any;
    expect(goodbye.textContent).toBe('Goodbye, take care!');
    // Spoken on the tool's own handle, which nothing the caller says can pause or cut any more.
    expect(handles.at(-1)!.allowInterruptions).toBe(false);
  });

  it('on a greeting: answers and does not end the call', async () => {
    const endRequests = await start();
    const greeting = await session!.run({ userInput: 'Hi, how are you?' }).wait();
    greeting.expect.nextEvent().isMessage({ role: 'assistant' });
    greeting.expect.noMoreEvents();
    expect(endRequests).toHaveLength(0);
  });

  it('on a question: answers and does not end the call', async () => {
    const endRequests = await start();
    const question = await session!.run({ userInput: 'What can you do?' }).wait();
    question.expect.nextEvent().isMessage({ role: 'assistant' });
    question.expect.noMoreEvents();
    expect(endRequests).toHaveLength(0);
    // An ordinary answer stays interruptible.
    expect(handles.at(-1)!.allowInterruptions).toBe(true);
  });

  it('makes the goodbye uninterruptible except with a realtime model that detects turns itself', () => {
    const auth = { apiKey: 'sk-local', baseURL: standIn.url };
    expect(goodbyeCanBeUninterruptible(new openai.LLM({ ...auth, model: 'stand-in' }))).toBe(true);
    const serverTurns = new openai.realtime.RealtimeModel(auth);
    expect(serverTurns.capabilities.turnDetection).toBe(true);
    expect(goodbyeCanBeUninterruptible(serverTurns)).toBe(false);
    const localTurns = new openai.realtime.RealtimeModel({ ...auth, turnDetection: null });
    expect(localTurns.capabilities.turnDetection).toBe(false);
    expect(goodbyeCanBeUninterruptible(localTurns)).toBe(true);
  });
});
