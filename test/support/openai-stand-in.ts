import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { attachRealtimeStandIn, type RealtimeStandIn } from './openai-realtime-stand-in.ts';
import { loudMilliseconds, parseWav } from './speech.ts';

/**
 * A local OpenAI-compatible server: the only stand-in in the system (OpenAI is unreachable here).
 * The real OpenAI plugin talks to it through `baseURL`. Chat completions stream (SSE, with usage)
 * and follow `rules` (first match wins), so a test scripts what "the model" does; TTS answers
 * 24 kHz 16-bit mono PCM, 40 ms per character, so playout takes a known, real time.
 */
export type ChatMessage = {
  role: string;
  content?: unknown;
  tool_calls?: unknown[];
  tool_call_id?: string;
};
export type Reply = {
  content?: string;
  toolCalls?: { name: string; arguments?: Record<string, unknown> }[];
};
export type Rule = {
  name: string;
  when: (messages: ChatMessage[]) => boolean;
  reply: Reply | ((messages: ChatMessage[]) => Reply);
};

export const TTS_SAMPLE_RATE = 24_000;
export const TTS_MS_PER_CHAR = 40;

export function textOf(m: ChatMessage | undefined): string {
  if (!m) return '';
  if (typeof m.content === 'string') return m.content;
  if (Array.isArray(m.content))
    return m.content.map((p: any) => (typeof p === 'string' ? p : (p?.text ?? ''))).join(' ');
  return '';
}
const lastUser = (ms: ChatMessage[]) => [...ms].reverse().find((m) => m.role === 'user');
const last = (ms: ChatMessage[]) => ms.at(-1);

/** The default script: greet, end the call on goodbye, say goodbye after end_call, echo otherwise. */
export function defaultRules(): Rule[] {
  return [
    {
      name: 'goodbye-after-end_call',
      when: (ms) => last(ms)?.role === 'tool',
      reply: { content: 'Goodbye, take care!' },
    },
    {
      name: 'greeting',
      when: (ms) => /greet the user/i.test(textOf(last(ms))) && last(ms)?.role !== 'user',
      reply: { content: 'Hello! How can I help you today?' },
    },
    {
      name: 'end_call-on-goodbye',
      when: (ms) => last(ms)?.role === 'user' && /\b(bye|goodbye)\b/i.test(textOf(lastUser(ms))),
      reply: { toolCalls: [{ name: 'end_call' }] },
    },
    {
      name: 'echo',
      when: () => true,
      reply: (ms) => ({ content: `You said: ${textOf(lastUser(ms))}` }),
    },
  ];
}

export type StandIn = {
  url: string;
  rules: Rule[];
  requests: { path: string; body: any }[];
  /** Milliseconds to hold each TTS response; Infinity = never answer (a hung TTS). */
  ttsDelayMs: number;
  /** Service-like delays (capacity bench): STT answer, the LLM's first token. */
  sttDelayMs: number;
  llmFirstTokenMs: number;
  /** When set, what the STT hears for any upload that holds speech (instead of `utterances`). */
  hears?: (speechMs: number) => string;
  /**
   * The words of each utterance the test plays as the caller, in order. The STT answers the next
   * one only for an upload that holds speech (at least MIN_SPEECH_MS louder than the floor), so a
   * pipeline that sends silence or nothing never hears them; a VAD that cuts one utterance in two
   * gets the words once and an empty text for the rest.
   */
  utterances: string[];
  /** Every transcription request: how much speech its WAV held, and what was answered. */
  transcriptions: { durationMs: number; speechMs: number; text: string }[];
  /** The Realtime WebSocket API on the same port (`<url>/realtime`), for realtime mode. */
  realtime: RealtimeStandIn;
  close(): Promise<void>;
};

export const MIN_SPEECH_MS = 300;

export async function startOpenAIStandIn(port = 0): Promise<StandIn> {
  const state: StandIn = {
    url: '',
    rules: defaultRules(),
    requests: [],
    ttsDelayMs: 0,
    sttDelayMs: 0,
    llmFirstTokenMs: 0,
    utterances: [],
    transcriptions: [],
    realtime: undefined as unknown as RealtimeStandIn,
    close: async () => {},
  };
  const server: Server = createServer(async (req, res) => {
    const raw = await readRaw(req);
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path.endsWith('/audio/transcriptions')) {
      if (state.sttDelayMs > 0) await new Promise((r) => setTimeout(r, state.sttDelayMs));
      return transcribe(res, raw, req.headers['content-type'], state);
    }
    const body = parseJson(raw);
    state.requests.push({ path, body });
    if (path.endsWith('/chat/completions')) {
      if (state.llmFirstTokenMs > 0) await new Promise((r) => setTimeout(r, state.llmFirstTokenMs));
      return streamChat(res, body, state.rules);
    }
    if (path.endsWith('/audio/speech')) {
      const text = String(body?.input ?? '');
      const samples = Math.round(
        (Math.min(text.length, 500) * TTS_MS_PER_CHAR * TTS_SAMPLE_RATE) / 1000,
      );
      const pcm = Buffer.alloc(samples * 2);
      for (let i = 0; i < samples; i++)
        pcm.writeInt16LE(
          Math.round(3000 * Math.sin((2 * Math.PI * 440 * i) / TTS_SAMPLE_RATE)),
          i * 2,
        );
      if (state.ttsDelayMs === Infinity) return; // hold the socket open: a TTS that never answers
      if (state.ttsDelayMs > 0) await new Promise((r) => setTimeout(r, state.ttsDelayMs));
      res.writeHead(200, { 'content-type': 'audio/pcm' });
      return res.end(pcm);
    }
    json(res, 404, { error: { message: `stand-in has no ${path}` } });
  });
  state.realtime = attachRealtimeStandIn(server);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  state.close = async () => {
    await state.realtime.close(); // upgraded sockets first: closeAllConnections does not see them
    await new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  };
  return state;
}

function streamChat(res: ServerResponse, body: any, rules: Rule[]) {
  const messages: ChatMessage[] = body?.messages ?? [];
  const rule = rules.find((r) => r.when(messages))!;
  const reply = typeof rule.reply === 'function' ? rule.reply(messages) : rule.reply;
  const id = `chatcmpl-${Math.random().toString(36).slice(2)}`;
  const base = {
    id,
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model: body?.model ?? 'stand-in',
  };
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const send = (delta: object, finish: string | null = null) =>
    res.write(
      `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`,
    );
  send({ role: 'assistant', content: '' });
  if (reply.content)
    for (const word of reply.content.match(/\S+\s*/g) ?? []) send({ content: word });
  (reply.toolCalls ?? []).forEach((call, index) => {
    send({
      tool_calls: [
        {
          index,
          id: `call_${index}_${id}`,
          type: 'function',
          function: { name: call.name, arguments: JSON.stringify(call.arguments ?? {}) },
        },
      ],
    });
  });
  send({}, reply.toolCalls?.length ? 'tool_calls' : 'stop');
  const promptTokens = JSON.stringify(messages).length >> 2;
  const completionTokens = ((reply.content?.length ?? 0) >> 2) + (reply.toolCalls?.length ?? 0) * 5;
  res.write(
    `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } })}\n\n`,
  );
  res.end('data: [DONE]\n\n');
}

async function readRaw(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function parseJson(raw: Buffer): any {
  const text = raw.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return { raw: text.slice(0, 200) };
  }
}

/** The `file` part of the multipart upload the OpenAI SDK sends. */
function uploadedFile(raw: Buffer, contentType: string | undefined): Buffer | undefined {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType ?? '');
  if (!boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  for (let at = raw.indexOf(delimiter); at >= 0;) {
    const next = raw.indexOf(delimiter, at + delimiter.length);
    const part = raw.subarray(at + delimiter.length, next < 0 ? raw.length : next);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd >= 0 && /name="file"/.test(part.subarray(0, headerEnd).toString('utf8')))
      return part.subarray(headerEnd + 4, part.length - 2); // drop the CRLF before the delimiter
    at = next;
  }
  return undefined;
}

function transcribe(
  res: ServerResponse,
  raw: Buffer,
  contentType: string | undefined,
  state: StandIn,
) {
  const file = uploadedFile(raw, contentType);
  if (!file) return json(res, 400, { error: { message: 'no file part in the upload' } });
  let pcm;
  try {
    pcm = parseWav(file);
  } catch (err) {
    return json(res, 400, { error: { message: `file is not a PCM WAV: ${String(err)}` } });
  }
  const durationMs = Math.round((pcm.samples.length / pcm.channels / pcm.sampleRate) * 1000);
  const speechMs = loudMilliseconds(pcm);
  const text =
    speechMs < MIN_SPEECH_MS
      ? ''
      : state.hears
        ? state.hears(speechMs)
        : (state.utterances.shift() ?? '');
  state.transcriptions.push({ durationMs, speechMs, text });
  json(res, 200, { text });
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
