import {
  ConnectionState,
  DisconnectReason,
  Room,
  RoomEvent,
  Track,
  type LocalAudioTrack,
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
} from 'livekit-client';
import {
  CALL_END_TOPIC,
  END_REASON_ATTRIBUTE,
  endReasonForAgentDisconnect,
} from '../../wire-contract/end-reasons.ts';
import { CallApi, refusalOf, type TokenOptions } from './call-api.ts';
import {
  callAgainAfterSeconds,
  endedInWords,
  endForAllRefusedInWords,
  LIVEKIT_UNREACHABLE,
  microphoneFailureInWords,
  NO_ASSISTANT,
  tokenRefusedInWords,
  type CallOutcome,
} from './call-messages.ts';
import { Captions } from './captions.ts';
import { CallDevices, DeviceChoice, showDeviceLists } from './devices.ts';
import { CallView } from './call-view.ts';
import { captionSpeaker, endNoticeReason, isAgent } from './from-agent.ts';

/**
 * How a page hosts the call. The defaults fit the page the edge serves itself; an app that embeds
 * the call sets `window.voiceCallConfig` before loading call-page.js (see docs/web-client.md).
 */
export type CallPageOptions = TokenOptions & {
  /** How long to wait for the assistant to join before giving up. */
  agentJoinTimeoutMs?: number;
  /**
   * How long the call waits for a caller whose connection dropped (the agent's
   * RECONNECT_GRACE_SECONDS), said while LiveKit reconnects. Default 10.
   */
  reconnectGraceSeconds?: number;
};

const AGENT_STATE = 'lk.agent.state';
/** What LiveKit's PARTICIPANT_REMOVED means for the assistant: the contract's own mapping. */
const REMOVED = endReasonForAgentDisconnect('PARTICIPANT_REMOVED');

export function mountCallPage(root: HTMLElement, options: CallPageOptions = {}): void {
  const view = new CallView(root);
  const api = new CallApi(options);
  const choice = new DeviceChoice();
  let call: ActiveCall | undefined;
  showDeviceLists(view, choice, () => (call?.live ? call.devices : undefined));

  view.onCall(async () => {
    if (call) return;
    call = new ActiveCall(view, api, options, choice);
    try {
      await call.start();
    } finally {
      if (!call.live) call = undefined;
    }
  });
  view.onHangUp(() => call?.hangUp());
  view.onMute((muted) => call?.setMuted(muted));
  view.onEndForAll(() => call?.endForAll());
  view.onSend((text) => call?.send(text));
  view.onCallOver(() => (call = undefined));
}

/** One call, from the click on Call to the words that say why it ended. */
class ActiveCall {
  readonly #view: CallView;
  readonly #api: CallApi;
  readonly #options: CallPageOptions;
  readonly #room = new Room({ adaptiveStream: false, dynacast: false });
  readonly #captions: Captions;
  readonly #outcome: CallOutcome = {};
  /** The microphone and speaker this call is on, and its level meters. */
  readonly devices: CallDevices;
  #participantToken = '';
  #mic: LocalAudioTrack | undefined;
  live = false;

  constructor(view: CallView, api: CallApi, options: CallPageOptions, choice: DeviceChoice) {
    this.#view = view;
    this.#api = api;
    this.#options = options;
    this.devices = new CallDevices(this.#room, view, choice);
    this.#captions = new Captions(view.captionList);
  }

  async start(): Promise<void> {
    const view = this.#view;
    view.connecting();
    // Inside the click: browsers only let a page start audio from a user gesture (the meters,
    // made as the microphone opens, too).
    void this.#room.startAudio();
    try {
      this.#mic = await this.devices.openMicrophone();
    } catch (err) {
      return view.failed(microphoneFailureInWords(err));
    }
    let credentials;
    try {
      credentials = await this.#api.token();
    } catch (err) {
      this.devices.release();
      const refused = refusalOf(err);
      return view.failed(tokenRefusedInWords(refused), callAgainAfterSeconds(refused));
    }
    this.#participantToken = credentials.participantToken;
    this.#listen();
    try {
      await this.#room.connect(credentials.serverUrl, credentials.participantToken);
      await this.#room.localParticipant.publishTrack(this.#mic, {
        source: Track.Source.Microphone,
      });
    } catch {
      this.devices.release();
      await this.#room.disconnect();
      return view.failed(LIVEKIT_UNREACHABLE);
    }
    this.live = true;
    view.inCall(this.#room.name);
    await this.devices.useChosenSpeaker();
    const arrival = await this.#agentJoined();
    // Gone before any assistant came: the edge ended the call (no worker had room in time), and
    // with no agent to say why, the ledger does.
    if (arrival === 'gone') return this.#endedWithoutAssistant(this.#room.name);
    if (arrival === 'timeout') {
      this.live = false;
      this.#outcome.byMe = 'hang_up';
      await this.#room.disconnect();
      return view.failed(NO_ASSISTANT);
    }
    view.assistantJoined();
  }

  /**
   * Waits for the assistant. The edge keeps re-dispatching a call no worker took and ends it past
   * its AGENT_WAIT_SECONDS (20 s) with a reason of its own; the page's own limit, longer, is for
   * an edge that does not watch.
   */
  #agentJoined(): Promise<'joined' | 'gone' | 'timeout'> {
    const present = () => [...this.#room.remoteParticipants.values()].some(isAgent);
    if (present()) return Promise.resolve('joined');
    return new Promise((resolve) => {
      const timer = setTimeout(() => done('timeout'), this.#options.agentJoinTimeoutMs ?? 45_000);
      const joined = (p: RemoteParticipant) => isAgent(p) && done('joined');
      const gone = () => done('gone');
      const done = (ok: 'joined' | 'gone' | 'timeout') => {
        clearTimeout(timer);
        this.#room.off(RoomEvent.ParticipantConnected, joined).off(RoomEvent.Disconnected, gone);
        resolve(ok);
      };
      this.#room.on(RoomEvent.ParticipantConnected, joined).on(RoomEvent.Disconnected, gone);
    });
  }

  #listen(): void {
    const room = this.#room;
    const view = this.#view;
    room.registerTextStreamHandler('lk.transcription', (reader, from) => {
      const who = captionSpeaker(
        room.getParticipantByIdentity(from.identity),
        room.localParticipant.identity,
      );
      if (who) void this.#captions.follow(reader, who);
    });
    room.on(RoomEvent.AudioPlaybackStatusChanged, () =>
      view.audioBlocked(!room.canPlaybackAudio, () => room.startAudio()),
    );
    room.on(
      RoomEvent.TrackSubscribed,
      (track: RemoteTrack, _pub, participant: RemoteParticipant) => {
        if (track.kind !== Track.Kind.Audio || !isAgent(participant)) return;
        view.playAgentAudio(track.attach() as HTMLAudioElement);
        this.devices.meterAssistant(track.mediaStreamTrack);
      },
    );
    room.on(
      RoomEvent.TrackUnsubscribed,
      (track: RemoteTrack, _pub, participant: RemoteParticipant) => {
        track.detach().forEach((el) => el.remove());
        if (track.kind === Track.Kind.Audio && isAgent(participant))
          this.devices.stopAssistantMeter();
      },
    );
    // LiveKit tries to get the connection back on its own (resuming the signal connection, or a
    // full reconnect); the call waits for the caller meanwhile.
    const reconnecting = () => view.reconnecting(this.#options.reconnectGraceSeconds ?? 10);
    room.on(RoomEvent.SignalReconnecting, reconnecting);
    room.on(RoomEvent.Reconnecting, reconnecting);
    room.on(RoomEvent.Reconnected, () => view.reconnecting(false));
    room.on(
      RoomEvent.ParticipantAttributesChanged,
      (changed: Record<string, string>, p: Participant) => {
        if (!isAgent(p)) return;
        if (changed[AGENT_STATE]) view.agentState(changed[AGENT_STATE]);
        if (changed[END_REASON_ATTRIBUTE]) this.#outcome.reason ??= changed[END_REASON_ATTRIBUTE];
      },
    );
    room.on(RoomEvent.DataReceived, (payload, from, _kind, topic, _encryption, senderIdentity) => {
      if (topic === CALL_END_TOPIC)
        this.#outcome.reason ??= endNoticeReason(payload, from, senderIdentity);
    });
    // In `leave` mode the assistant goes and the caller stays alone in the room: the call is over
    // for them too. Why it went: what it said (attribute or notice); else removed by the server
    // (the API's remove_agent, which it cannot announce itself); else nothing (it crashed or lost
    // its connection).
    // A full reconnect first drops every remote participant, then says it is reconnecting: judge
    // once the event is over, and leave the assistant alone while the connection comes back.
    // An assistant gone because the room was deleted has not vanished: the room's own disconnect
    // follows and names the end (it raced the page's, and lost, when the call was ended for all).
    room.on(RoomEvent.ParticipantDisconnected, (p: RemoteParticipant, why?: DisconnectReason) => {
      if (!isAgent(p) || !this.live || why === DisconnectReason.ROOM_DELETED) return;
      queueMicrotask(() => {
        if (!this.live || room.state !== ConnectionState.Connected) return;
        if (why === DisconnectReason.PARTICIPANT_REMOVED) this.#outcome.reason ??= REMOVED;
        if (!this.#outcome.reason) this.#outcome.agentVanished = true;
        void room.disconnect();
      });
    });
    room.on(RoomEvent.Disconnected, (reason?: DisconnectReason) => {
      this.#outcome.disconnect ??= reason === undefined ? undefined : DisconnectReason[reason];
      this.devices.release();
      const wasLive = this.live;
      this.live = false;
      if (wasLive) view.ended(endedInWords(this.#outcome));
    });
  }

  /** Reads the recorded end of a call no assistant joined, and says it in words. */
  async #endedWithoutAssistant(room: string): Promise<void> {
    if (this.#outcome.reason || this.#outcome.byMe) return;
    try {
      const reason = await this.#api.recordedEnd(room, this.#participantToken);
      if (reason === undefined) return;
      this.#outcome.reason = reason;
      this.#view.ended(endedInWords(this.#outcome));
    } catch {
      /* the disconnect's own words stand */
    }
  }

  /** Muted, the track is disabled: LiveKit sends no audio and tells the room it is muted. */
  async setMuted(muted: boolean): Promise<void> {
    if (!this.#mic || !this.live) return;
    if (muted) await this.#mic.mute();
    else await this.#mic.unmute();
    this.#view.muted(muted);
  }

  async hangUp(): Promise<void> {
    this.#outcome.byMe ??= 'hang_up';
    await this.#room.disconnect();
  }

  /** Ends the call for everyone through the edge, with this participant's own LiveKit token. */
  async endForAll(): Promise<void> {
    const room = this.#room.name;
    this.#view.endingForAll(true);
    // Set first: LiveKit's disconnect can arrive before the edge's answer.
    this.#outcome.byMe = 'end_for_all';
    try {
      await this.#api.endForAll(room, this.#participantToken);
    } catch (err) {
      delete this.#outcome.byMe;
      this.#view.notice(endForAllRefusedInWords(refusalOf(err)));
    } finally {
      this.#view.endingForAll(false);
    }
  }

  async send(text: string): Promise<void> {
    await this.#room.localParticipant.sendText(text, { topic: 'lk.chat' });
    this.#captions.typed(text);
  }
}
