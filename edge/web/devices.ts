import { createLocalAudioTrack, TrackEvent, type LocalAudioTrack, type Room } from 'livekit-client';
import {
  deviceLostInWords,
  deviceLostNoFallbackInWords,
  deviceMissingInWords,
  deviceSwitchFailedInWords,
} from './call-messages.ts';
import { Levels } from './levels.ts';

/**
 * The person's microphone and speaker: the devices there are, and the ones they chose, remembered
 * in localStorage for the next visit; the lists on the page; and the devices a call is on, with
 * its level meters. A device is remembered by id and by label: browsers may give the same device
 * another id later (cleared site data, another profile), and its name finds it.
 */
export type DeviceKind = 'audioinput' | 'audiooutput';
export type Device = { deviceId: string; label: string };

const DEVICE_KINDS: DeviceKind[] = ['audioinput', 'audiooutput'];

const KEY: Record<DeviceKind, string> = {
  audioinput: 'voice-call.microphone',
  audiooutput: 'voice-call.speaker',
};

/** Whether this browser lets a page choose where audio plays (HTMLMediaElement.setSinkId). */
export const canChooseSpeaker = (): boolean =>
  typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

export class DeviceChoice {
  readonly #storage: Pick<Storage, 'getItem' | 'setItem'> | undefined;
  /** This visit's choices: what holds when storage is blocked or full. */
  readonly #visit = new Map<DeviceKind, Device>();

  constructor(storage: Pick<Storage, 'getItem' | 'setItem'> | undefined = safeLocalStorage()) {
    this.#storage = storage;
  }

  /** The devices of a kind, with their names once the page may see them (after the mic prompt). */
  async list(kind: DeviceKind): Promise<Device[]> {
    const all = (await navigator.mediaDevices?.enumerateDevices?.()) ?? [];
    return all
      .filter((d) => d.kind === kind && d.deviceId)
      .map(({ deviceId, label }) => ({ deviceId, label }));
  }

  /** What the person chose last time, if they chose one (the browser's default otherwise). */
  remembered(kind: DeviceKind): Device | undefined {
    // This visit's choice first: storage may refuse a write and still hold an older one.
    let saved: Device | null | undefined = this.#visit.get(kind);
    try {
      saved ??= JSON.parse(this.#storage?.getItem(KEY[kind]) ?? 'null') as Device | null;
    } catch {
      /* unreadable: no choice */
    }
    // An empty id is the browser's default: no choice to look for.
    return saved && typeof saved.deviceId === 'string' && saved.deviceId ? saved : undefined;
  }

  remember(kind: DeviceKind, device: Device): void {
    this.#visit.set(kind, device);
    try {
      this.#storage?.setItem(KEY[kind], JSON.stringify(device));
    } catch {
      /* storage full or refused: the choice holds for this visit only */
    }
  }

  /** The remembered device among `present`, by id, else by name; undefined if it is not there. */
  find(kind: DeviceKind, present: Device[]): Device | undefined {
    const saved = this.remembered(kind);
    if (!saved) return undefined;
    return (
      present.find((d) => d.deviceId === saved.deviceId) ??
      (saved.label ? present.find((d) => d.label === saved.label) : undefined)
    );
  }
}

function safeLocalStorage(): Storage | undefined {
  try {
    return globalThis.localStorage;
  } catch {
    return undefined; // storage blocked (privacy settings): choices last for the visit
  }
}

/** What device handling shows (the page's CallView): the lists, the meters, a sentence. */
export type DeviceView = {
  readonly youLevel: HTMLElement;
  readonly assistantLevel: HTMLElement;
  speakerChoice(shown: boolean): void;
  showDevices(kind: DeviceKind, devices: Device[], selected: string | undefined): void;
  onDeviceChosen(fn: (kind: DeviceKind, device: Device) => void): void;
  notice(message: string): void;
};

/**
 * The device lists from the moment the page opens: shown at once, kept current as devices come
 * and go, a choice remembered. While a call is live (`live()`), it follows both.
 */
export function showDeviceLists(
  view: DeviceView,
  choice: DeviceChoice,
  live: () => CallDevices | undefined,
): void {
  view.speakerChoice(canChooseSpeaker());
  const show = async () => {
    for (const kind of DEVICE_KINDS) {
      const present = await choice.list(kind);
      view.showDevices(kind, present, choice.find(kind, present)?.deviceId);
    }
  };
  void show();
  navigator.mediaDevices?.addEventListener?.('devicechange', () => {
    const call = live();
    void (call ? call.changed() : show());
  });
  view.onDeviceChosen((kind, device) => {
    choice.remember(kind, device);
    void live()?.use(kind, device);
  });
}

/**
 * The devices one call is on: the microphone it opened (and the meter's own copy of it, which
 * still shows the voice while the call is muted), the speaker it plays on, and the level meters.
 */
export class CallDevices {
  readonly #room: Room;
  readonly #view: DeviceView;
  readonly #choice: DeviceChoice;
  /** The device each kind is on, as far as this page put it there (a lost one is named by it). */
  readonly #inUse = new Map<DeviceKind, Device>();
  /** Device changes, one after another: unplugging a headset fires several events. */
  #changes: Promise<void> = Promise.resolve();
  #mic: LocalAudioTrack | undefined;
  #micForMeter: MediaStreamTrack | undefined;
  #levels: Levels | undefined;

  constructor(room: Room, view: DeviceView, choice: DeviceChoice) {
    this.#room = room;
    this.#view = view;
    this.#choice = choice;
  }

  /**
   * Opens the chosen microphone (echo cancellation and noise suppression on) with the meters, and
   * says so if the chosen one is missing. The meters come first, before anything is awaited: so
   * inside the click on Call, where browsers let an AudioContext run. Throws the browser's error
   * if no microphone opens, holding nothing then.
   */
  async openMicrophone(): Promise<LocalAudioTrack> {
    try {
      this.#levels = new Levels();
    } catch {
      /* no Web Audio: the call goes on without meters */
    }
    let mic: LocalAudioTrack;
    try {
      mic = await createLocalAudioTrack({
        deviceId: (await this.#chosen('audioinput'))?.deviceId,
        echoCancellation: true,
        noiseSuppression: true,
      });
    } catch (err) {
      this.release();
      throw err;
    }
    this.#mic = mic;
    this.#followMic();
    // The track can change under the page (a device switch, or livekit-client restarting it on
    // the default device when the one in use ended): the meter follows.
    mic.on(TrackEvent.Restarted, () => this.#followMic());
    const opened = mic.mediaStreamTrack;
    this.#inUse.set('audioinput', {
      deviceId: opened.getSettings().deviceId ?? '',
      label: opened.label,
    });
    await this.#sayIfChosenMissing('audioinput', opened.label);
    return mic;
  }

  /**
   * The remembered device, if it is there. Before the browser shows names and ids (no microphone
   * permission yet) it cannot be looked for: then it is asked for anyway, and the browser falls
   * back to another if it is gone.
   */
  async #chosen(kind: DeviceKind): Promise<Device | undefined> {
    const present = await this.#choice.list(kind);
    if (present.every((d) => !d.label)) return this.#choice.remembered(kind);
    return this.#choice.find(kind, present);
  }

  /**
   * Lists the devices (with names, now that the microphone is open) and says so if the chosen one
   * is not among them.
   */
  async #sayIfChosenMissing(kind: DeviceKind, using: string | undefined): Promise<void> {
    const present = await this.#choice.list(kind);
    const remembered = this.#choice.remembered(kind);
    const found = this.#choice.find(kind, present);
    this.#view.showDevices(kind, present, found?.deviceId ?? this.#active(kind));
    if (remembered && !found && present.some((d) => d.label))
      this.#view.notice(deviceMissingInWords(kind, remembered.label, using));
  }

  /** Once in the room: the assistant plays on the chosen speaker, where the browser can route it. */
  async useChosenSpeaker(): Promise<void> {
    if (!canChooseSpeaker()) return;
    const speaker = await this.#chosen('audiooutput');
    if (
      speaker &&
      (await this.#room.switchActiveDevice('audiooutput', speaker.deviceId).catch(() => false))
    )
      this.#inUse.set('audiooutput', speaker);
    await this.#sayIfChosenMissing('audiooutput', undefined);
  }

  #active(kind: DeviceKind): string | undefined {
    if (kind === 'audioinput') return this.#mic?.mediaStreamTrack.getSettings().deviceId;
    return this.#room.getActiveDevice(kind);
  }

  /** The person picked a device during the call: the call moves to it. */
  async use(kind: DeviceKind, device: Device): Promise<void> {
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
  changed(): Promise<void> {
    this.#changes = this.#changes.then(() => this.#changed());
    return this.#changes;
  }

  async #changed(): Promise<void> {
    const said: string[] = [];
    for (const kind of DEVICE_KINDS) {
      if (kind === 'audiooutput' && !canChooseSpeaker()) continue;
      const present = await this.#choice.list(kind);
      const inUse = this.#inUse.get(kind);
      const fallback = present.find((d) => d.deviceId === 'default') ?? present[0];
      if (
        inUse?.deviceId &&
        inUse.deviceId !== 'default' &&
        fallback &&
        !present.some((d) => d.deviceId === inUse.deviceId)
      ) {
        try {
          if (this.#active(kind) !== fallback.deviceId)
            await this.#room.switchActiveDevice(kind, fallback.deviceId, false);
          this.#inUse.set(kind, fallback);
          said.push(deviceLostInWords(kind, inUse.label, fallback.label));
        } catch {
          said.push(deviceLostNoFallbackInWords(kind, inUse.label, fallback.label));
        }
      }
      this.#view.showDevices(kind, present, this.#active(kind));
    }
    if (said.length) this.#view.notice(said.join(' '));
  }

  /** The assistant's meter follows its audio track, until `stopAssistantMeter()`. */
  meterAssistant(track: MediaStreamTrack): void {
    this.#levels?.follow(this.#view.assistantLevel, track);
  }

  stopAssistantMeter(): void {
    this.#levels?.stop(this.#view.assistantLevel);
  }

  /** The meter follows its own copy of the microphone, made again whenever the device changes. */
  #followMic(): void {
    if (!this.#mic) return;
    this.#micForMeter?.stop();
    this.#micForMeter = this.#mic.mediaStreamTrack.clone();
    this.#levels?.follow(this.#view.youLevel, this.#micForMeter);
  }

  /** The microphone, its meter copy and the meters: everything this call holds of the devices. */
  release(): void {
    this.#mic?.stop();
    this.#micForMeter?.stop();
    this.#levels?.close();
    this.#levels = undefined;
  }
}
