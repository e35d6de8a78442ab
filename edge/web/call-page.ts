import {
  ConnectionState,
  createLocalAudioTrack,
  DisconnectReason,
  Room,
  RoomEvent,
  Track,
  TrackEvent,
  TokenSource,
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
import {
  callAgainAfterSeconds,
  deviceLostInWords,
  deviceLostNoFallbackInWords,
  deviceMissingInWords,
  deviceSwitchFailedInWords,
  edgeErrorFromTokenSource,
  endedInWords,
  endForAllRefusedInWords,
  errorFields,
  LIVEKIT_UNREACHABLE,
  microphoneFailureInWords,
  NO_ASSISTANT,
  tokenRefusedInWords,
  type CallOutcome,
} from './call-messages.ts';
import { Captions } from './captions.ts';
import { canChooseSpeaker, DeviceChoice, type Device, type DeviceKind } from './devices.ts';
import { CallView } from './call-view.ts';
import { captionSpeaker, endNoticeReason, isAgent } from './from-agent.ts';
import { Levels } from './levels.ts';

/**
 * How a page hosts the call. The defaults fit the page the edge serves itself; an app that embeds
 * the call sets `window.voiceCallConfig` before loading call-page.js (see docs/web-client.md).
 */
export type CallPageOptions = {
  /** LiveKit's standard token endpoint. Default: `/token` on this origin. */
  tokenUrl?: string;
  /** The end user's credential for /token, e.g. `Bearer <JWT from your identity provider>`. */
  getAuthorization?: () => string | undefined | Promise<string | undefined>;
  participantName?: string;
  /** An agent on the edge's allow-list; default: the edge's AGENT_NAME. */
  agentName?: string;
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
const DEVICE_KINDS: DeviceKind[] = ['audioinput', 'audiooutput'];

export function mountCallPage(root: HTMLElement, options: CallPageOptions = {}): void {
  const view = new CallView(root);
  const tokenUrl = new URL(options.tokenUrl ?? '/token', location.href);
  const devices = new DeviceChoice();
  let call: ActiveCall | undefined;

  view.speakerChoice(canChooseSpeaker());
  const showDevices = async () => {
    for (const kind of DEVICE_KINDS) {
      const present = await devices.list(kind);
      view.showDevices(kind, present, devices.find(kind, present)?.deviceId);
    }
  };
  void showDevices();
  navigator.mediaDevices?.addEventListener?.('devicechange', () =>
    call?.live ? void call.devicesChanged() : void showDevices(),
  );
  view.onDeviceChosen((kind, device) => {
    devices.remember(kind, device);
    void call?.useDevice(kind, device);
  });

  view.onCall(async () => {
    if (call) return;
    call = new ActiveCall(view, tokenUrl, options, devices);
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
  readonly #tokenUrl: URL;
  readonly #options: CallPageOptions;
  readonly #room = new Room({ adaptiveStream: false, dynacast: false });
  readonly #captions: Captions;
  readonly #outcome: CallOutcome = {};
  readonly #devices: DeviceChoice;
  /** The device each kind is on, as far as this page put it there (a lost one is named by it). */
  readonly #inUse = new Map<DeviceKind, Device>();
  /** Device changes, one after another: unplugging a headset fires several events. */
  #deviceChanges: Promise<void> = Promise.resolve();
  #participantToken = '';
  #mic: LocalAudioTrack | undefined;
  /** The meter's own copy of the microphone: it still shows the voice while the call is muted. */
  #micForMeter: MediaStreamTrack | undefined;
  #levels: Levels | undefined;
  live = false;

  constructor(view: CallView, tokenUrl: URL, options: CallPageOptions, devices: DeviceChoice) {
    this.#view = view;
    this.#tokenUrl = tokenUrl;
    this.#options = options;
    this.#devices = devices;
    this.#captions = new Captions(view.captionList);
  }

  async start(): Promise<void> {
    const view = this.#view;
    view.connecting();
    // Inside the click: browsers only let a page start audio from a user gesture.
    void this.#room.startAudio();
    try {
      this.#levels = new Levels();
    } catch {
      /* no Web Audio: the call goes on without meters */
    }
    try {
      this.#mic = await createLocalAudioTrack({
        deviceId: (await this.#chosen('audioinput'))?.deviceId,
        echoCancellation: true,
        noiseSuppression: true,
      });
    } catch (err) {
      this.#release();
      return view.failed(microphoneFailureInWords(err));
    }
    this.#followMic();
    // The track can change under the page (a device switch, or livekit-client restarting it on
    // the default device when the one in use ended): the meter follows.
    this.#mic.on(TrackEvent.Restarted, () => this.#followMic());
    const opened = this.#mic.mediaStreamTrack;
    this.#inUse.set('audioinput', {
      deviceId: opened.getSettings().deviceId ?? '',
      label: opened.label,
    });
    await this.#sayIfChosenMissing('audioinput', opened.label);
    let credentials;
    try {
      const authorization = await this.#options.getAuthorization?.();
      const source = TokenSource.endpoint(this.#tokenUrl.href, {
        headers: authorization ? { Authorization: authorization } : {},
      });
      const { participantName, agentName } = this.#options;
      credentials = await source.fetch({
        ...(participantName && { participantName }),
        ...(agentName && { agentName }),
      });
    } catch (err) {
      this.#release();
      const refused = edgeErrorFromTokenSource(err);
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
      this.#release();
      await this.#room.disconnect();
      return view.failed(LIVEKIT_UNREACHABLE);
    }
    this.live = true;
    view.inCall(this.#room.name);
    await this.#useChosenSpeaker();
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
        this.#levels?.follow(view.assistantLevel, track.mediaStreamTrack);
      },
    );
    room.on(
      RoomEvent.TrackUnsubscribed,
      (track: RemoteTrack, _pub, participant: RemoteParticipant) => {
        track.detach().forEach((el) => el.remove());
        if (track.kind === Track.Kind.Audio && isAgent(participant))
          this.#levels?.stop(view.assistantLevel);
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
    room.on(RoomEvent.DataReceived, (payload, from, _kind, topic) => {
      if (topic === CALL_END_TOPIC) this.#outcome.reason ??= endNoticeReason(payload, from);
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
      this.#release();
      const wasLive = this.live;
      this.live = false;
      if (wasLive) view.ended(endedInWords(this.#outcome));
    });
  }

  /** Reads the recorded end of a call no assistant joined, and says it in words. */
  async #endedWithoutAssistant(room: string): Promise<void> {
    if (this.#outcome.reason || this.#outcome.byMe) return;
    try {
      const res = await fetch(new URL(`/calls/${encodeURIComponent(room)}`, this.#tokenUrl), {
        headers: { authorization: `Bearer ${this.#participantToken}` },
      });
      const call = res.ok ? ((await res.json()) as { end_reason?: unknown }) : {};
      if (typeof call.end_reason !== 'string') return;
      this.#outcome.reason = call.end_reason;
      this.#view.ended(endedInWords(this.#outcome));
    } catch {
      /* the disconnect's own words stand */
    }
  }

  /**
   * The remembered device, if it is there. Before the browser shows names and ids (no microphone
   * permission yet) it cannot be looked for: then it is asked for anyway, and the browser falls
   * back to another if it is gone.
   */
  async #chosen(kind: DeviceKind): Promise<Device | undefined> {
    const present = await this.#devices.list(kind);
    if (present.every((d) => !d.label)) return this.#devices.remembered(kind);
    return this.#devices.find(kind, present);
  }

  /**
   * Lists the devices (with names, now that the microphone is open) and says so if the chosen one
   * is not among them.
   */
  async #sayIfChosenMissing(kind: DeviceKind, using: string | undefined): Promise<void> {
    const present = await this.#devices.list(kind);
    const remembered = this.#devices.remembered(kind);
    const found = this.#devices.find(kind, present);
    this.#view.showDevices(kind, present, found?.deviceId ?? this.#activeDevice(kind));
    if (remembered && !found && present.some((d) => d.label))
      this.#view.notice(deviceMissingInWords(kind, remembered.label, using));
  }

  async #useChosenSpeaker(): Promise<void> {
    if (!canChooseSpeaker()) return;
    const speaker = await this.#chosen('audiooutput');
    if (
      speaker &&
      (await this.#room.switchActiveDevice('audiooutput', speaker.deviceId).catch(() => false))
    )
      this.#inUse.set('audiooutput', speaker);
    await this.#sayIfChosenMissing('audiooutput', undefined);
  }

  #activeDevice(kind: DeviceKind): string | undefined {
    if (kind === 'audioinput') return this.#mic?.mediaStreamTrack.getSettings().deviceId;
    return this.#room.getActiveDevice(kind);
  }

  /** The person picked a device during the call: the call moves to it. */
  async useDevice(kind: DeviceKind, device: Device): Promise<void> {
    if (!this.live) return;
    if (kind === 'audiooutput' && !canChooseSpeaker()) return;
    try {
      // "Default" is a literal device only in Chromium: elsewhere any device will do.
      await this.#room.switchActiveDevice(kind, device.deviceId || 'default', !!device.deviceId);
      this.#inUse.set(kind, device);
    } catch {
      this.#view.notice(deviceSwitchFailedInWords(kind, device.label));
    }
  }

  /**
   * A device came or went. If the one in use went (unplugged), the call moves to the default
   * and says so, instead of going silent (livekit-client may have restarted the microphone on the
   * default already, when its track ended); either way the lists show what is there now.
   */
  devicesChanged(): Promise<void> {
    this.#deviceChanges = this.#deviceChanges.then(() => this.#devicesChanged());
    return this.#deviceChanges;
  }

  async #devicesChanged(): Promise<void> {
    const said: string[] = [];
    for (const kind of DEVICE_KINDS) {
      if (kind === 'audiooutput' && !canChooseSpeaker()) continue;
      const present = await this.#devices.list(kind);
      const inUse = this.#inUse.get(kind);
      const fallback = present.find((d) => d.deviceId === 'default') ?? present[0];
      if (
        inUse?.deviceId &&
        inUse.deviceId !== 'default' &&
        fallback &&
        !present.some((d) => d.deviceId === inUse.deviceId)
      ) {
        try {
          if (this.#activeDevice(kind) !== fallback.deviceId)
            await this.#room.switchActiveDevice(kind, fallback.deviceId, false);
          this.#inUse.set(kind, fallback);
          said.push(deviceLostInWords(kind, inUse.label, fallback.label));
        } catch {
          said.push(deviceLostNoFallbackInWords(kind, inUse.label, fallback.label));
        }
      }
      this.#view.showDevices(kind, present, this.#activeDevice(kind));
    }
    if (said.length) this.#view.notice(said.join(' '));
  }

  /** The meter follows its own copy of the microphone, made again whenever the device changes. */
  #followMic(): void {
    if (!this.#mic) return;
    this.#micForMeter?.stop();
    this.#micForMeter = this.#mic.mediaStreamTrack.clone();
    this.#levels?.follow(this.#view.youLevel, this.#micForMeter);
  }

  /** The microphone, its meter copy and the meters: everything this call holds of the device. */
  #release(): void {
    this.#mic?.stop();
    this.#micForMeter?.stop();
    this.#levels?.close();
    this.#levels = undefined;
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
      const res = await fetch(new URL(`/calls/${encodeURIComponent(room)}/end`, this.#tokenUrl), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${this.#participantToken}`,
        },
        body: JSON.stringify({ mode: 'end_for_all' }),
      });
      if (res.ok) return;
      delete this.#outcome.byMe;
      this.#view.notice(
        endForAllRefusedInWords({ status: res.status, ...errorFields(await res.text()) }),
      );
    } catch {
      delete this.#outcome.byMe;
      this.#view.notice(
        endForAllRefusedInWords({ status: 0, message: 'the call service could not be reached' }),
      );
    } finally {
      this.#view.endingForAll(false);
    }
  }

  async send(text: string): Promise<void> {
    await this.#room.localParticipant.sendText(text, { topic: 'lk.chat' });
    this.#captions.typed(text);
  }
}
