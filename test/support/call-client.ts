import {
  AudioFrame,
  AudioSource,
  AudioStream,
  ParticipantKind,
  TrackKind,
  LocalAudioTrack,
  Room,
  RoomEvent,
  TrackPublishOptions,
  TrackSource,
  type DisconnectReason,
  type RemoteParticipant,
} from '@livekit/rtc-node';
import { readWav, SPEECH_SAMPLE_RATE } from './speech.ts';
import { CALL_END_TOPIC, END_REASON_ATTRIBUTE } from '../../wire-contract/index.ts';

export type TimedEvent = { at: number; kind: string; detail?: unknown };

/**
 * A caller, as a LiveKit client SDK does it: a token from the edge's standard token endpoint, a
 * WebRTC join, text to the agent on `lk.chat`; it records the agent's transcriptions (as they
 * stream), its end notice, and how and when it was disconnected.
 */
export class CallClient {
  readonly room = new Room();
  readonly events: TimedEvent[] = [];
  roomName = '';
  identity = '';
  participantToken = '';
  disconnectReason: DisconnectReason | undefined;
  readonly #disconnected: Promise<DisconnectReason>;

  constructor() {
    this.#disconnected = new Promise((resolve) =>
      this.room.on(RoomEvent.Disconnected, (reason) => {
        this.disconnectReason = reason;
        this.#log('disconnected', reason);
        resolve(reason);
      }),
    );
    this.room.registerTextStreamHandler('lk.transcription', async (reader, info) => {
      let text = '';
      try {
        for await (const chunk of reader) {
          text += chunk;
          this.#log('transcription-chunk', { from: info.identity, text });
        }
      } catch {
        /* stream cut by a disconnect: what arrived is recorded */
      }
      this.#log('transcription', {
        from: info.identity,
        text,
        final: reader.info.attributes?.['lk.transcription_final'] === 'true',
      });
    });
    this.room.on(RoomEvent.ParticipantConnected, (p: RemoteParticipant) =>
      this.#log('participant-joined', { identity: p.identity, kind: p.kind }),
    );
    this.room.on(RoomEvent.ParticipantDisconnected, (p: RemoteParticipant) =>
      this.#log('participant-left', { identity: p.identity }),
    );
    this.room.on(RoomEvent.ParticipantAttributesChanged, (changed, p) => {
      if (changed['lk.agent.state'])
        this.#log('agent-state', { identity: p.identity, state: changed['lk.agent.state'] });
      if (changed[END_REASON_ATTRIBUTE])
        this.#log('end-reason-attribute', {
          identity: p.identity,
          reason: changed[END_REASON_ATTRIBUTE],
        });
    });
    this.room.on(RoomEvent.DataReceived, (data, _p, _k, topic) => {
      if (topic === CALL_END_TOPIC)
        this.#log('end-notice', JSON.parse(new TextDecoder().decode(data)));
    });
  }

  #log(kind: string, detail?: unknown) {
    this.events.push({ at: Date.now(), kind, detail });
  }

  /** POST /token exactly as TokenSource.endpoint does (snake_case body, auth header), then join. */
  async join(edgeUrl: string, authorization: string, body: Record<string, unknown> = {}) {
    const res = await fetch(`${edgeUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization },
      body: JSON.stringify(body),
    });
    if (res.status !== 201)
      throw new Error(`token endpoint answered ${res.status}: ${await res.text()}`);
    const { server_url, participant_token, room_name, participant_identity } =
      (await res.json()) as Record<string, string>;
    return this.connect(server_url!, participant_token!, room_name!, participant_identity!);
  }

  async connect(serverUrl: string, token: string, roomName: string, identity: string) {
    this.roomName = roomName;
    this.identity = identity;
    this.participantToken = token;
    await this.room.connect(serverUrl, token, { autoSubscribe: true, dynacast: false });
    this.#log('connected');
    return this;
  }

  #mic: AudioSource | undefined;
  /** Settles once a remote participant (the agent) has subscribed to the microphone. */
  #micSubscribed: Promise<void> | undefined;

  /**
   * Listens to the agent's audio as a person hears it: an `agent-audio` event for the first frame
   * of each stretch of sound that follows at least 250 ms of silence (the start of an answer).
   */
  watchAgentAudio() {
    this.room.on(RoomEvent.TrackSubscribed, (track, _pub, participant) => {
      if (track.kind !== TrackKind.KIND_AUDIO || participant.kind !== ParticipantKind.AGENT) return;
      void (async () => {
        let quietSince = 0;
        let speaking = false;
        const frames = new AudioStream(track).getReader();
        for (;;) {
          const { done, value: frame } = await frames.read();
          if (done) break;
          let sum = 0;
          for (const v of frame.data) sum += v * v;
          const loud = Math.sqrt(sum / frame.data.length) > 300;
          const now = Date.now();
          if (loud && !speaking && now - quietSince >= 250) this.#log('agent-audio');
          if (loud) speaking = true;
          else if (speaking) {
            speaking = false;
            quietSince = now;
          }
        }
      })().catch(() => {});
    });
  }

  /**
   * Publishes a microphone track (at the speech files' rate) and resolves once a remote participant,
   * the agent, has subscribed to it, so speech played afterwards is heard from its first word.
   * Rejects ("no agent subscribed …") when none has within `subscribeTimeoutMs`, or when the room
   * disconnects first: a caller no agent was dispatched to must fail, not hang its test or bench.
   * The default bounds a cold job process on a busy host (e2e files wait as long for a greeting);
   * a bench passes its own. Called again (`speak` does), it waits for the same subscription.
   */
  async publishMicrophone(sampleRate = SPEECH_SAMPLE_RATE, subscribeTimeoutMs = 30_000) {
    if (!this.#mic) {
      this.#mic = new AudioSource(sampleRate, 1);
      // Listening before publishing: the subscription can arrive before publishTrack resolves.
      this.#micSubscribed = new Promise<void>((resolve, reject) => {
        this.room.once(RoomEvent.LocalTrackSubscribed, () => resolve());
        void this.#disconnected.then((reason) =>
          reject(new Error(`the room disconnected (${reason}) before an agent subscribed`)),
        );
      });
      this.#micSubscribed.catch(() => {}); // observed by each wait below, not unhandled meanwhile
      const track = LocalAudioTrack.createAudioTrack('microphone', this.#mic);
      await this.room.localParticipant!.publishTrack(
        track,
        new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }),
      );
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#micSubscribed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(`no agent subscribed to the microphone within ${subscribeTimeoutMs} ms`),
              ),
            subscribeTimeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    if (!this.events.some((e) => e.kind === 'microphone-subscribed'))
      this.#log('microphone-subscribed');
  }

  /**
   * Plays a WAV as this caller's microphone in real time (captureFrame waits while the source's
   * queue is full). Resolves when the last frame has been sent.
   */
  async speak(wavPath: string) {
    const pcm = readWav(wavPath);
    await this.publishMicrophone(pcm.sampleRate);
    const mic = this.#mic!;
    if (pcm.sampleRate !== mic.sampleRate || pcm.channels !== 1)
      throw new Error(`${wavPath}: expected mono ${mic.sampleRate} Hz`);
    this.#log('speaking', wavPath);
    const perFrame = pcm.sampleRate / 100; // 10 ms frames
    for (let at = 0; at + perFrame <= pcm.samples.length; at += perFrame) {
      await mic.captureFrame(
        new AudioFrame(pcm.samples.slice(at, at + perFrame), pcm.sampleRate, 1, perFrame),
      );
    }
    await mic.waitForPlayout();
    this.#log('spoke', wavPath);
  }

  say(text: string) {
    this.#log('said', text);
    return this.room.localParticipant!.sendText(text, { topic: 'lk.chat' });
  }

  /** Resolves when an event matching `pred` has been recorded (already, or later). */
  async waitForEvent(
    kind: string,
    pred: (detail: any) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<TimedEvent> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = this.events.find((e) => e.kind === kind && pred(e.detail));
      if (found) return found;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(
      `no ${kind} event within ${timeoutMs} ms; saw: ${JSON.stringify(this.events.map((e) => e.kind))}`,
    );
  }

  waitForDisconnect(timeoutMs = 20_000): Promise<DisconnectReason> {
    return Promise.race([
      this.#disconnected,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('client was not disconnected')), timeoutMs),
      ),
    ]);
  }

  async leave() {
    if (this.room.isConnected) await this.room.disconnect();
  }
}
