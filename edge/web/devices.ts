/**
 * The person's microphone and speaker: the devices there are, and the ones they chose, remembered
 * in localStorage for the next visit. A device is remembered by id and by label: browsers may give
 * the same device another id later (cleared site data, another profile), and its name finds it.
 */
export type DeviceKind = 'audioinput' | 'audiooutput';
export type Device = { deviceId: string; label: string };

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
