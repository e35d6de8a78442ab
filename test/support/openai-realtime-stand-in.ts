import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * A local stand-in for the OpenAI Realtime WebSocket API (GA event names: `output_audio`,
 * `output_audio_transcript`, `conversation.item.added`), for the real
 * `@livekit/agents-plugin-openai` `realtime.RealtimeModel` through its `baseURL`: with
 * `baseURL = http://host:port/v1` the plugin connects to `ws://host:port/v1/realtime?model=…`.
 *
 * It attaches to an existing HTTP server (the `upgrade` event of any path ending in `/realtime`)
 * and keeps each connection's conversation, instructions and tools. On `response.create` a rule
 * decides the reply (see `defaultRealtimeReply`): a spoken reply streams its transcript word by
 * word and its audio as a 440 Hz tone, 24 kHz 16-bit mono PCM, 40 ms per character (the HTTP
 * stand-in's TTS), in 100 ms chunks paced at real time; a tool call is one `function_call` item.
 * It detects no speech unless `serverVad` is set (tests drive realtime calls by text); with it,
 * it turns the appended audio into turns as the service's turn detection does (`serverVad`).
 */

export const REALTIME_SAMPLE_RATE = 24_000;
/** Audio per character of a spoken reply (as the HTTP stand-in's TTS_MS_PER_CHAR). */
export const REALTIME_MS_PER_CHAR = 40;
/** Audio per `response.output_audio.delta`. */
export const REALTIME_CHUNK_MS = 100;

/** One conversation item, as the stand-in holds it. */
export type RealtimeItem = {
  id: string;
  type: 'message' | 'function_call' | 'function_call_output' | string;
  role?: string;
  /** A message's text: its text parts and transcripts, joined by spaces. */
  text: string;
  name?: string;
  call_id?: string;
  arguments?: string;
  output?: string;
};

export type RealtimeTool = { type?: string; name: string; description?: string; parameters?: any };

/** The session as `session.update` left it. */
export type RealtimeSessionState = {
  model: string;
  instructions: string;
  tools: RealtimeTool[];
  toolChoice: unknown;
  voice?: string;
  outputModalities: string[];
  turnDetection: unknown;
  transcription: unknown;
};

export type RealtimeReply = {
  text?: string;
  toolCall?: { name: string; arguments?: Record<string, unknown> };
};

/**
 * Decides a response. `responseInstructions` are the ones `response.create` carried, without the
 * session's instructions that the plugin prepends to them ('' when there were none).
 */
export type RealtimeReplyRule = (
  items: RealtimeItem[],
  responseInstructions: string,
  session: RealtimeSessionState,
) => RealtimeReply;

/** What one response did, in order of `response.create`. */
export type RealtimeResponseRecord = {
  connection: number;
  id: string;
  instructions: string;
  reply: RealtimeReply;
  status: 'in_progress' | 'completed' | 'cancelled';
};

export type RealtimeConnection = {
  id: number;
  /** The `model` query parameter. */
  model: string;
  authorization: string | undefined;
  openaiBeta: string | undefined;
  session: RealtimeSessionState;
  items: RealtimeItem[];
  /** Every client event type this connection sent, in order. */
  clientEvents: string[];
  /** Milliseconds of input audio appended (and not yet committed or cleared). */
  inputAudioMs: number;
  closed: boolean;
};

/**
 * The service's own turn detection, modelled: an energy detector over the appended audio. After
 * `silenceMs` of quiet following speech (for `server_vad`, the session's `silence_duration_ms`
 * instead) the turn is committed as the service does (speech_stopped, committed, the item, its
 * transcription) and, when the session's turn detection creates responses, a response starts.
 * Every response, asked for or not, then begins `responseDelayMs` after `response.created`
 * (the model's time to its first output).
 */
export type RealtimeServerVad = {
  silenceMs: number;
  responseDelayMs: number;
  /** The transcript of a turn with this much loud audio. */
  hears: (speechMs: number) => string;
};

export type RealtimeStandIn = {
  /** Off (undefined) unless set: see RealtimeServerVad. */
  serverVad: RealtimeServerVad | undefined;
  /** The rule for every `response.create`; replace it to script the model. */
  reply: RealtimeReplyRule;
  /** 1 = audio deltas at real time (after a one-chunk head start); 0 = all at once. */
  audioPacing: number;
  /** Transcripts for committed input audio, in order ('' once used up). */
  utterances: string[];
  /** Every client event type received, over all connections, in order. */
  clientEvents: string[];
  connections: RealtimeConnection[];
  responses: RealtimeResponseRecord[];
  /** Closes every realtime socket and stops handling upgrades. */
  close(): Promise<void>;
};

const lastOf = (items: RealtimeItem[]) => items.at(-1);
const lastUserText = (items: RealtimeItem[]) =>
  [...items].reverse().find((i) => i.type === 'message' && i.role === 'user')?.text ?? '';

/**
 * The default script, as the HTTP stand-in's defaultRules(): say a line asked for verbatim; say
 * goodbye after a tool's output; greet when asked to; call `end_call` (if the session has it) on a
 * user's bye/goodbye; echo otherwise.
 */
export const defaultRealtimeReply: RealtimeReplyRule = (items, responseInstructions, session) => {
  const verbatim = /Say exactly this and nothing else: "([\s\S]*)"\s*$/.exec(responseInstructions);
  if (verbatim) return { text: verbatim[1] };
  const last = lastOf(items);
  if (last?.type === 'function_call_output') return { text: 'Goodbye, take care!' };
  if (/greet the user/i.test(responseInstructions))
    return { text: 'Hello! How can I help you today?' };
  if (
    last?.type === 'message' &&
    last.role === 'user' &&
    /\b(bye|goodbye)\b/i.test(last.text) &&
    session.toolChoice !== 'none' &&
    session.tools.some((t) => t.name === 'end_call')
  )
    return { toolCall: { name: 'end_call' } };
  return { text: `You said: ${lastUserText(items)}` };
};

export function attachRealtimeStandIn(
  server: Server,
  options: { reply?: RealtimeReplyRule; audioPacing?: number } = {},
): RealtimeStandIn {
  const wss = new WebSocketServer({ noServer: true });
  const sockets = new Set<WebSocket>();
  let nextConnection = 1;
  const standIn: RealtimeStandIn = {
    serverVad: undefined,
    reply: options.reply ?? defaultRealtimeReply,
    audioPacing: options.audioPacing ?? 1,
    utterances: [],
    clientEvents: [],
    connections: [],
    responses: [],
    close: async () => {
      server.off('upgrade', onUpgrade);
      await Promise.all(
        [...sockets].map(
          (ws) =>
            new Promise<void>((resolve) => {
              if (ws.readyState === ws.CLOSED) return resolve();
              const kill = setTimeout(() => ws.terminate(), 500);
              ws.once('close', () => {
                clearTimeout(kill);
                resolve();
              });
              ws.close(1001, 'stand-in closing');
            }),
        ),
      );
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (!url.pathname.replace(/\/$/, '').endsWith('/realtime')) {
      // Nobody else answers upgrades: refuse instead of leaving the socket hanging.
      if (server.listenerCount('upgrade') === 1) refuse(socket, 404, 'Not Found');
      return;
    }
    if (!/^Bearer \S+/.test(req.headers.authorization ?? ''))
      return refuse(socket, 401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      serveConnection(standIn, ws, req, url, nextConnection++);
    });
  };
  server.on('upgrade', onUpgrade);
  return standIn;
}

function refuse(socket: Duplex, status: number, reason: string) {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

const newId = (prefix: string) => `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 20)}`;

type ActiveResponse = {
  id: string;
  record: RealtimeResponseRecord;
  metadata: unknown;
  item?: { id: string; transcript: string; audioMs: number };
  callItem?: Record<string, unknown>;
  cancelled: boolean;
  wake?: () => void;
};

function serveConnection(
  standIn: RealtimeStandIn,
  ws: WebSocket,
  req: IncomingMessage,
  url: URL,
  id: number,
) {
  const conn: RealtimeConnection = {
    id,
    model: url.searchParams.get('model') ?? '',
    authorization: req.headers.authorization,
    openaiBeta: req.headers['openai-beta'] as string | undefined,
    session: {
      model: url.searchParams.get('model') ?? '',
      instructions: '',
      tools: [],
      toolChoice: 'auto',
      outputModalities: ['audio'],
      turnDetection: { type: 'server_vad' },
      transcription: null,
    },
    items: [],
    clientEvents: [],
    inputAudioMs: 0,
    closed: false,
  };
  standIn.connections.push(conn);
  const conversationId = newId('conv');
  const sessionId = newId('sess');
  let active: ActiveResponse | undefined;
  /** The modelled turn detector: where it is in the appended audio (ms since the session began). */
  const vad = { atMs: 0, loudRunMs: 0, speaking: false, speechMs: 0, quietMs: 0 };

  const send = (event: Record<string, unknown>) => {
    if (conn.closed || ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({ event_id: newId('event'), ...event }));
  };
  const sendError = (clientEventId: unknown, code: string, message: string) =>
    send({
      type: 'error',
      error: {
        type: 'invalid_request_error',
        code,
        message,
        param: null,
        event_id: typeof clientEventId === 'string' ? clientEventId : null,
      },
    });
  const sessionResource = () => ({
    type: 'realtime',
    object: 'realtime.session',
    id: sessionId,
    model: conn.session.model,
    output_modalities: conn.session.outputModalities,
    instructions: conn.session.instructions,
    tools: conn.session.tools,
    tool_choice: conn.session.toolChoice,
    max_output_tokens: 'inf',
    audio: {
      input: {
        format: { type: 'audio/pcm', rate: REALTIME_SAMPLE_RATE },
        transcription: conn.session.transcription,
        turn_detection: conn.session.turnDetection,
      },
      output: {
        format: { type: 'audio/pcm', rate: REALTIME_SAMPLE_RATE },
        voice: conn.session.voice ?? 'marin',
      },
    },
  });

  /** Adds an item after `previousId` (null: first; undefined: last); returns its predecessor. */
  const insertItem = (item: RealtimeItem, previousId: string | null | undefined) => {
    let at = conn.items.length;
    if (previousId === null) at = 0;
    else if (previousId !== undefined) at = conn.items.findIndex((i) => i.id === previousId) + 1;
    conn.items.splice(at, 0, item);
    return at > 0 ? conn.items[at - 1]!.id : null;
  };

  const finishResponse = (response: ActiveResponse, status: 'completed' | 'cancelled') => {
    response.record.status = status;
    if (active === response) active = undefined;
    const output: Record<string, unknown>[] = [];
    const spoken = response.item;
    const itemStatus = status === 'completed' ? 'completed' : 'incomplete';
    if (spoken) output.push(assistantItem(spoken.id, spoken.transcript, itemStatus, conn.session));
    if (response.callItem) output.push(response.callItem);
    const outputText = spoken?.transcript ?? JSON.stringify(response.callItem ?? '');
    const inputTokens = Math.max(
      1,
      Math.ceil(
        (conn.session.instructions.length +
          response.record.instructions.length +
          conn.items.reduce((n, i) => n + i.text.length + (i.output?.length ?? 0), 0)) /
          4,
      ),
    );
    const outputTextTokens = Math.max(1, Math.ceil(outputText.length / 4));
    const outputAudioTokens = Math.ceil((spoken?.audioMs ?? 0) / 50);
    send({
      type: 'response.done',
      response: {
        object: 'realtime.response',
        id: response.id,
        status,
        status_details:
          status === 'cancelled' ? { type: 'cancelled', reason: 'client_cancelled' } : null,
        output,
        conversation_id: conversationId,
        output_modalities: conn.session.outputModalities,
        metadata: response.metadata ?? null,
        usage: {
          total_tokens: inputTokens + outputTextTokens + outputAudioTokens,
          input_tokens: inputTokens,
          output_tokens: outputTextTokens + outputAudioTokens,
          input_token_details: {
            text_tokens: inputTokens,
            audio_tokens: 0,
            image_tokens: 0,
            cached_tokens: 0,
            cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 },
          },
          output_token_details: { text_tokens: outputTextTokens, audio_tokens: outputAudioTokens },
        },
      },
    });
  };

  const createResponse = async (event: any) => {
    const params = event.response ?? {};
    let instructions = typeof params.instructions === 'string' ? params.instructions : '';
    const sessionPrefix = conn.session.instructions ? `${conn.session.instructions}\n` : '';
    if (sessionPrefix && instructions.startsWith(sessionPrefix))
      instructions = instructions.slice(sessionPrefix.length);
    else if (instructions === conn.session.instructions) instructions = '';
    const session: RealtimeSessionState = {
      ...conn.session,
      tools: Array.isArray(params.tools) ? params.tools : conn.session.tools,
      toolChoice: params.tool_choice ?? conn.session.toolChoice,
    };
    const reply = standIn.reply(
      conn.items.map((i) => ({ ...i })),
      instructions,
      session,
    );
    const response: ActiveResponse = {
      id: newId('resp'),
      metadata: params.metadata,
      cancelled: false,
      record: { connection: conn.id, id: '', instructions, reply, status: 'in_progress' },
    };
    response.record.id = response.id;
    standIn.responses.push(response.record);
    active = response;
    send({
      type: 'response.created',
      response: {
        object: 'realtime.response',
        id: response.id,
        status: 'in_progress',
        status_details: null,
        output: [],
        conversation_id: conversationId,
        output_modalities: session.outputModalities,
        metadata: response.metadata ?? null,
        usage: null,
      },
    });

    // The model's time to its first output, when the service is modelled (serverVad).
    const delay = standIn.serverVad?.responseDelayMs ?? 0;
    if (delay > 0) await sleepUnlessWoken(response, delay);
    if (response.cancelled || conn.closed) return;

    if (reply.toolCall) {
      const args = JSON.stringify(reply.toolCall.arguments ?? {});
      const item: RealtimeItem = {
        id: newId('item'),
        type: 'function_call',
        name: reply.toolCall.name,
        call_id: newId('call'),
        arguments: args,
        text: '',
      };
      const common = { response_id: response.id, item_id: item.id, output_index: 0 };
      const resource = (status: string, argumentsSoFar: string) => ({
        id: item.id,
        object: 'realtime.item',
        type: 'function_call',
        status,
        name: item.name,
        call_id: item.call_id,
        arguments: argumentsSoFar,
      });
      send({ type: 'response.output_item.added', ...common, item: resource('in_progress', '') });
      const previous = insertItem(item, undefined);
      send({
        type: 'conversation.item.added',
        previous_item_id: previous,
        item: resource('in_progress', ''),
      });
      send({
        type: 'response.function_call_arguments.delta',
        ...common,
        call_id: item.call_id,
        delta: args,
      });
      send({
        type: 'response.function_call_arguments.done',
        ...common,
        call_id: item.call_id,
        name: item.name,
        arguments: args,
      });
      response.callItem = resource('completed', args);
      send({ type: 'response.output_item.done', ...common, item: response.callItem });
      send({ type: 'conversation.item.done', item: response.callItem });
      return finishResponse(response, 'completed');
    }

    const text = reply.text ?? '';
    const audio = session.outputModalities.includes('audio');
    const item: RealtimeItem = { id: newId('item'), type: 'message', role: 'assistant', text: '' };
    response.item = { id: item.id, transcript: '', audioMs: 0 };
    const common = { response_id: response.id, item_id: item.id, output_index: 0 };
    const inProgress = assistantItem(item.id, '', 'in_progress', session, []);
    send({ type: 'response.output_item.added', ...common, item: inProgress });
    const previous = insertItem(item, undefined);
    send({ type: 'conversation.item.added', previous_item_id: previous, item: inProgress });
    const part = audio ? { type: 'audio', transcript: '' } : { type: 'text', text: '' };
    send({ type: 'response.content_part.added', ...common, content_index: 0, part });

    const deltaType = audio
      ? 'response.output_audio_transcript.delta'
      : 'response.output_text.delta';
    const words = text.match(/\S+\s*/g) ?? [];
    const say = (word: string) => {
      response.item!.transcript += word;
      item.text = response.item!.transcript;
      send({ type: deltaType, ...common, content_index: 0, delta: word });
    };
    if (!audio) words.forEach(say);
    else {
      const totalSamples = Math.round(
        (text.length * REALTIME_MS_PER_CHAR * REALTIME_SAMPLE_RATE) / 1000,
      );
      const chunkSamples = (REALTIME_CHUNK_MS * REALTIME_SAMPLE_RATE) / 1000;
      const chunks = Math.ceil(totalSamples / chunkSamples);
      const wordStartMs: number[] = [];
      words.reduce((at, w) => (wordStartMs.push(at * REALTIME_MS_PER_CHAR), at + w.length), 0);
      const start = Date.now();
      let nextWord = 0;
      for (let i = 0; i < chunks; i++) {
        const due = start + Math.max(0, i - 1) * REALTIME_CHUNK_MS * standIn.audioPacing;
        if (due > Date.now()) await sleepUnlessWoken(response, due - Date.now());
        if (response.cancelled || conn.closed) return;
        const chunkEndMs = (i + 1) * REALTIME_CHUNK_MS;
        while (nextWord < words.length && (wordStartMs[nextWord]! < chunkEndMs || i === chunks - 1))
          say(words[nextWord++]!);
        const first = i * chunkSamples;
        const count = Math.min(chunkSamples, totalSamples - first);
        send({
          type: 'response.output_audio.delta',
          ...common,
          content_index: 0,
          delta: tone(first, count).toString('base64'),
        });
        response.item.audioMs = ((first + count) * 1000) / REALTIME_SAMPLE_RATE;
      }
      words.slice(nextWord).forEach(say);
    }
    if (response.cancelled || conn.closed) return;
    const transcript = response.item.transcript;
    if (audio) {
      send({ type: 'response.output_audio.done', ...common, content_index: 0 });
      send({
        type: 'response.output_audio_transcript.done',
        ...common,
        content_index: 0,
        transcript,
      });
    } else {
      send({ type: 'response.output_text.done', ...common, content_index: 0, text: transcript });
    }
    send({
      type: 'response.content_part.done',
      ...common,
      content_index: 0,
      part: audio ? { type: 'audio', transcript } : { type: 'text', text: transcript },
    });
    const done = assistantItem(item.id, transcript, 'completed', session);
    send({ type: 'response.output_item.done', ...common, item: done });
    send({ type: 'conversation.item.done', item: done });
    finishResponse(response, 'completed');
  };

  /** The input audio so far becomes a user item with `transcript`, as on a commit. */
  const commitInput = (transcript: string) => {
    conn.inputAudioMs = 0;
    const item: RealtimeItem = { id: newId('item'), type: 'message', role: 'user', text: '' };
    const previous = insertItem(item, undefined);
    send({ type: 'input_audio_buffer.committed', previous_item_id: previous, item_id: item.id });
    send({
      type: 'conversation.item.added',
      previous_item_id: previous,
      item: {
        id: item.id,
        object: 'realtime.item',
        type: 'message',
        status: 'completed',
        role: 'user',
        content: [{ type: 'input_audio', transcript: null }],
      },
    });
    item.text = transcript;
    send({
      type: 'conversation.item.input_audio_transcription.completed',
      item_id: item.id,
      content_index: 0,
      transcript,
    });
  };

  /** 10 ms blocks of 16-bit PCM: loud above ~-36 dBFS; speech after 60 ms of loud audio. */
  const detectTurns = (opts: RealtimeServerVad, pcm: Buffer) => {
    const detection = conn.session.turnDetection as {
      type?: string;
      silence_duration_ms?: number;
      create_response?: boolean;
      interrupt_response?: boolean;
    } | null;
    if (!detection) return;
    const silenceMs =
      detection.type === 'server_vad' ? (detection.silence_duration_ms ?? 500) : opts.silenceMs;
    const block = (REALTIME_SAMPLE_RATE / 100) * 2;
    for (let at = 0; at + block <= pcm.length; at += block) {
      let sum = 0;
      for (let i = at; i < at + block; i += 2) sum += pcm.readInt16LE(i) ** 2;
      const loud = Math.sqrt(sum / (block / 2)) > 500;
      vad.atMs += 10;
      vad.loudRunMs = loud ? vad.loudRunMs + 10 : 0;
      if (!vad.speaking) {
        if (vad.loudRunMs < 60) continue;
        Object.assign(vad, { speaking: true, speechMs: 60, quietMs: 0 });
        send({ type: 'input_audio_buffer.speech_started', audio_start_ms: vad.atMs - 60 });
        if (active && detection.interrupt_response !== false) {
          active.cancelled = true;
          active.wake?.();
          finishResponse(active, 'cancelled');
        }
        continue;
      }
      if (loud) Object.assign(vad, { speechMs: vad.speechMs + 10, quietMs: 0 });
      else vad.quietMs += 10;
      if (vad.quietMs < silenceMs) continue;
      vad.speaking = false;
      send({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: vad.atMs });
      commitInput(opts.hears(vad.speechMs));
      if (detection.create_response !== false && !active)
        createResponse({}).catch(() => {
          /* the connection went away */
        });
    }
  };

  const handle = (event: any) => {
    const type = String(event?.type);
    conn.clientEvents.push(type);
    standIn.clientEvents.push(type);
    switch (type) {
      case 'session.update': {
        const s = event.session ?? {};
        if (typeof s.model === 'string') conn.session.model = s.model;
        if (typeof s.instructions === 'string') conn.session.instructions = s.instructions;
        if (Array.isArray(s.tools)) conn.session.tools = s.tools;
        if (s.tool_choice !== undefined) conn.session.toolChoice = s.tool_choice;
        if (Array.isArray(s.output_modalities)) conn.session.outputModalities = s.output_modalities;
        const input = s.audio?.input;
        if (input && 'turn_detection' in input) conn.session.turnDetection = input.turn_detection;
        if (input && 'transcription' in input) conn.session.transcription = input.transcription;
        if (typeof s.audio?.output?.voice === 'string') conn.session.voice = s.audio.output.voice;
        return send({ type: 'session.updated', session: sessionResource() });
      }
      case 'input_audio_buffer.append': {
        const pcm = Buffer.from(String(event.audio ?? ''), 'base64');
        conn.inputAudioMs += (pcm.length / 2 / REALTIME_SAMPLE_RATE) * 1000;
        if (standIn.serverVad) detectTurns(standIn.serverVad, pcm);
        return;
      }
      case 'input_audio_buffer.clear':
        conn.inputAudioMs = 0;
        return send({ type: 'input_audio_buffer.cleared' });
      case 'input_audio_buffer.commit': {
        if (conn.inputAudioMs < 100)
          return sendError(
            event.event_id,
            'input_audio_buffer_commit_empty',
            `Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has ${conn.inputAudioMs.toFixed(2)}ms of audio.`,
          );
        return commitInput(standIn.utterances.shift() ?? '');
      }
      case 'conversation.item.create': {
        const raw = event.item ?? {};
        const itemId = typeof raw.id === 'string' && raw.id ? raw.id : newId('item');
        if (conn.items.some((i) => i.id === itemId))
          return sendError(
            event.event_id,
            'item_id_already_exists',
            `Item with id '${itemId}' already exists.`,
          );
        const previousId: string | null | undefined = event.previous_item_id;
        if (previousId && !conn.items.some((i) => i.id === previousId))
          return sendError(
            event.event_id,
            'previous_item_not_found',
            `Previous item with id '${previousId}' does not exist.`,
          );
        const item: RealtimeItem = {
          id: itemId,
          type: raw.type,
          text: contentText(raw.content),
          ...(raw.role !== undefined && { role: raw.role }),
          ...(raw.name !== undefined && { name: raw.name }),
          ...(raw.call_id !== undefined && { call_id: raw.call_id }),
          ...(raw.arguments !== undefined && { arguments: raw.arguments }),
          ...(raw.output !== undefined && { output: raw.output }),
        };
        const previous = insertItem(item, previousId);
        const resource = { ...raw, id: itemId, object: 'realtime.item', status: 'completed' };
        send({ type: 'conversation.item.added', previous_item_id: previous, item: resource });
        return send({ type: 'conversation.item.done', item: resource });
      }
      case 'conversation.item.delete': {
        const at = conn.items.findIndex((i) => i.id === event.item_id);
        if (at < 0)
          return sendError(
            event.event_id,
            'item_not_found',
            `Item with id '${event.item_id}' not found.`,
          );
        conn.items.splice(at, 1);
        return send({ type: 'conversation.item.deleted', item_id: event.item_id });
      }
      case 'conversation.item.truncate': {
        const item = conn.items.find((i) => i.id === event.item_id);
        if (!item)
          return sendError(
            event.event_id,
            'item_not_found',
            `Item with id '${event.item_id}' not found.`,
          );
        const audioEndMs = Number(event.audio_end_ms) || 0;
        // What was heard stays in the conversation: the characters of the audio played.
        item.text = item.text.slice(0, Math.floor(audioEndMs / REALTIME_MS_PER_CHAR));
        return send({
          type: 'conversation.item.truncated',
          item_id: item.id,
          content_index: event.content_index ?? 0,
          audio_end_ms: audioEndMs,
        });
      }
      case 'response.create':
        if (active)
          return sendError(
            event.event_id,
            'conversation_already_has_active_response',
            `Conversation already has an active response in progress: ${active.id}. Wait until the response is finished before creating a new one.`,
          );
        createResponse(event).catch((err) =>
          sendError(event.event_id, 'server_error', `stand-in failed: ${String(err)}`),
        );
        return;
      case 'response.cancel': {
        const response = active;
        if (!response || (event.response_id && event.response_id !== response.id))
          return sendError(
            event.event_id,
            'response_cancel_not_active',
            'Cancellation failed: no active response found',
          );
        response.cancelled = true;
        response.wake?.();
        if (response.item) {
          send({
            type: 'response.output_item.done',
            response_id: response.id,
            output_index: 0,
            item: assistantItem(
              response.item.id,
              response.item.transcript,
              'incomplete',
              conn.session,
            ),
          });
        }
        return finishResponse(response, 'cancelled');
      }
      default:
        return sendError(
          event?.event_id,
          'invalid_value',
          `Invalid value: '${type}'. Supported values are: 'session.update', 'input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'conversation.item.create', 'conversation.item.truncate', 'conversation.item.delete', 'response.create', and 'response.cancel'.`,
        );
    }
  };

  ws.on('message', (data, isBinary) => {
    let event: any;
    try {
      event = JSON.parse(isBinary ? '' : data.toString());
    } catch {
      return sendError(null, 'invalid_json', 'The server could not parse the event as JSON.');
    }
    handle(event);
  });
  ws.on('close', () => {
    conn.closed = true;
    if (active) {
      active.cancelled = true;
      active.wake?.();
      active = undefined;
    }
  });
  ws.on('error', () => {});
  send({ type: 'session.created', session: sessionResource() });
}

function assistantItem(
  id: string,
  transcript: string,
  status: string,
  session: RealtimeSessionState,
  content?: unknown[],
): Record<string, unknown> {
  const audio = session.outputModalities.includes('audio');
  return {
    id,
    object: 'realtime.item',
    type: 'message',
    status,
    role: 'assistant',
    content:
      content ??
      (audio
        ? [{ type: 'output_audio', transcript }]
        : [{ type: 'output_text', text: transcript }]),
  };
}

function contentText(content: unknown): string {
  const parts = Array.isArray(content) ? content : content ? [content] : [];
  return parts
    .map((p: any) => (typeof p === 'string' ? p : (p?.text ?? p?.transcript ?? '')))
    .filter((t: string) => t)
    .join(' ');
}

/** `count` samples of the 440 Hz tone from sample `first` on (continuous across chunks). */
function tone(first: number, count: number): Buffer {
  const pcm = Buffer.alloc(count * 2);
  for (let i = 0; i < count; i++)
    pcm.writeInt16LE(
      Math.round(3000 * Math.sin((2 * Math.PI * 440 * (first + i)) / REALTIME_SAMPLE_RATE)),
      i * 2,
    );
  return pcm;
}

function sleepUnlessWoken(response: ActiveResponse, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      response.wake = undefined;
      resolve();
    }
    response.wake = done;
  });
}
