import { callAgainIn } from './call-messages.ts';
import type { Device, DeviceKind } from './devices.ts';

const TRY_AGAIN = 'Press Call to try again.';

/**
 * The page's DOM: buttons, status line, agent state, timer, captions and the text box. It knows
 * nothing of LiveKit; the call tells it what happened and it shows it. `data-phase` on the root
 * (idle, connecting, in-call, ended) lets styles and tests follow the page as a person does.
 */
export class CallView {
  readonly #root: HTMLElement;
  readonly captionList: HTMLOListElement;
  readonly #status: HTMLElement;
  readonly #alert: HTMLElement;
  readonly #state: HTMLElement;
  readonly #timer: HTMLElement;
  readonly #roomName: HTMLElement;
  readonly #call: HTMLButtonElement;
  readonly #hangUp: HTMLButtonElement;
  readonly #endForAll: HTMLButtonElement;
  readonly #enableAudio: HTMLButtonElement;
  readonly #mute: HTMLButtonElement;
  readonly #micState: HTMLElement;
  readonly #reconnecting: HTMLElement;
  /** The level meters: `--level` and `data-active` follow the audio (levels.ts). */
  readonly youLevel: HTMLElement;
  readonly assistantLevel: HTMLElement;
  readonly #chat: HTMLFormElement;
  readonly #message: HTMLInputElement;
  readonly #audio: HTMLElement;
  readonly #devices: Record<DeviceKind, HTMLSelectElement>;
  #clock: ReturnType<typeof setInterval> | undefined;
  /** Counts down the wait the edge asked for before the next Call. */
  #waitToCall: ReturnType<typeof setInterval> | undefined;
  #callOver: () => void = () => {};

  constructor(root: HTMLElement) {
    this.#root = root;
    const $ = <T extends HTMLElement>(selector: string) => {
      const el = root.querySelector<T>(selector);
      if (!el) throw new Error(`call page markup is missing ${selector}`);
      return el;
    };
    this.captionList = $('#captions');
    this.#status = $('#status');
    this.#alert = $('#alert');
    this.#state = $('#agent-state');
    this.#timer = $('#timer');
    this.#roomName = $('#room-name');
    this.#call = $('#call');
    this.#hangUp = $('#hang-up');
    this.#endForAll = $('#end-for-all');
    this.#enableAudio = $('#enable-audio');
    this.#mute = $('#mute');
    this.#micState = $('#mic-state');
    this.#reconnecting = $('#reconnecting');
    this.youLevel = $('#you-level');
    this.assistantLevel = $('#assistant-level');
    this.#chat = $('#chat');
    this.#message = $('#message');
    this.#audio = $('#agent-audio');
    this.#devices = {
      audioinput: $<HTMLSelectElement>('#microphone'),
      audiooutput: $<HTMLSelectElement>('#speaker'),
    };
    this.#phase('idle', 'Press Call to talk to the assistant.');
  }

  onCall(fn: () => void): void {
    this.#call.addEventListener('click', fn);
  }
  onHangUp(fn: () => void): void {
    this.#hangUp.addEventListener('click', fn);
  }
  onEndForAll(fn: () => void): void {
    this.#endForAll.addEventListener('click', fn);
  }
  /** Mute or unmute: `fn` gets the state the person asked for. */
  onMute(fn: (muted: boolean) => void): void {
    this.#mute.addEventListener('click', () => fn(this.#root.dataset.muted !== 'true'));
  }
  /** The person picked a device: `fn` gets its kind and the device as the list showed it. */
  onDeviceChosen(fn: (kind: DeviceKind, device: Device) => void): void {
    for (const [kind, select] of Object.entries(this.#devices) as [DeviceKind, HTMLSelectElement][])
      select.addEventListener('change', () => {
        const option = select.selectedOptions[0];
        if (option) fn(kind, { deviceId: option.value, label: option.dataset.label ?? '' });
      });
  }

  /**
   * Lists the devices of a kind with `selected` chosen. Before the browser shows names (no
   * microphone permission yet) there is nothing to choose from: the list says "Default".
   */
  showDevices(kind: DeviceKind, devices: Device[], selected: string | undefined): void {
    const select = this.#devices[kind];
    const noun = kind === 'audioinput' ? 'Microphone' : 'Speaker';
    const named = devices.some((d) => d.label);
    const shown: Device[] = named ? [...devices] : [];
    if (!shown.some((d) => d.deviceId === 'default')) shown.unshift({ deviceId: '', label: '' });
    select.replaceChildren(
      ...shown.map((d, i) => {
        const option = document.createElement('option');
        option.value = d.deviceId;
        option.dataset.label = d.label;
        option.textContent = d.deviceId ? d.label || `${noun} ${i}` : 'Default';
        return option;
      }),
    );
    select.value = shown.some((d) => d.deviceId === selected) ? selected! : shown[0]!.deviceId;
    select.disabled = !named;
  }

  /** Whether the speaker can be chosen at all (the browser supports setSinkId). */
  speakerChoice(shown: boolean): void {
    this.#root.querySelector<HTMLElement>('#speaker-choice')!.hidden = !shown;
  }

  onCallOver(fn: () => void): void {
    this.#callOver = fn;
  }
  onSend(fn: (text: string) => void): void {
    this.#chat.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = this.#message.value.trim();
      if (!text) return;
      this.#message.value = '';
      fn(text);
    });
  }

  connecting(): void {
    this.captionList.replaceChildren();
    this.#audio.replaceChildren();
    this.#showAlert('');
    this.#roomName.textContent = '';
    this.agentState('');
    this.muted(false);
    this.#timer.textContent = '0:00';
    this.#phase('connecting', 'Connecting…');
  }

  inCall(room: string): void {
    this.#roomName.textContent = room;
    this.#roomName.title = room;
    this.#phase('in-call', 'Waiting for the assistant to join…');
    this.muted(false);
    const started = Date.now();
    this.#clock = setInterval(() => {
      const s = Math.floor((Date.now() - started) / 1000);
      this.#timer.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
    }, 1000);
  }

  assistantJoined(): void {
    this.#status.textContent = 'In a call with the assistant. Speak, or type below.';
    this.#message.focus();
  }

  agentState(state: string): void {
    this.#state.textContent = state || '—';
    if (state) this.#root.dataset.agentState = state;
    else delete this.#root.dataset.agentState;
    this.assistantLevel.dataset.state = state;
  }

  /** Muted: the microphone sends nothing, and the page says so where the person looks. */
  muted(muted: boolean): void {
    this.#root.dataset.muted = String(muted);
    this.#mute.setAttribute('aria-pressed', String(muted));
    this.#mute.textContent = muted ? 'Unmute' : 'Mute';
    this.#micState.textContent = muted ? 'muted: the assistant hears nothing' : 'live';
  }

  /** LiveKit lost the connection and is trying again; the call waits `graceSeconds` for it. */
  reconnecting(graceSeconds: number | false): void {
    this.#reconnecting.hidden = graceSeconds === false;
    this.#reconnecting.textContent =
      graceSeconds === false ? '' : `Reconnecting… the call waits up to ${graceSeconds} s.`;
    if (graceSeconds === false) delete this.#root.dataset.reconnecting;
    else this.#root.dataset.reconnecting = 'true';
  }

  playAgentAudio(el: HTMLAudioElement): void {
    el.addEventListener('playing', () => (this.#root.dataset.agentAudio = 'playing'));
    this.#audio.append(el);
  }

  /** Shown when the browser blocks sound until the person clicks. */
  audioBlocked(blocked: boolean, unblock: () => Promise<void>): void {
    this.#enableAudio.hidden = !blocked;
    this.#enableAudio.onclick = () => void unblock();
  }

  endingForAll(busy: boolean): void {
    this.#endForAll.disabled = busy;
  }

  /** A problem during the call that does not end it. */
  notice(message: string): void {
    this.#showAlert(message);
  }

  /**
   * The call could not start: say why, and let the person try again, at once or, when the edge
   * said how long to wait, once that has passed (Call is off meanwhile, the wait counted down).
   */
  failed(message: string, retryAfterSeconds?: number): void {
    this.#stopClock();
    this.#showAlert(message);
    this.#phase('idle', TRY_AGAIN);
    this.#callOver();
    clearInterval(this.#waitToCall);
    if (!retryAfterSeconds) return;
    const until = Date.now() + retryAfterSeconds * 1000;
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      this.#call.disabled = left > 0;
      this.#status.textContent = left > 0 ? callAgainIn(left) : TRY_AGAIN;
      if (left <= 0) clearInterval(this.#waitToCall);
    };
    tick();
    this.#waitToCall = setInterval(tick, 1000);
  }

  ended(words: string): void {
    this.#stopClock();
    this.#enableAudio.hidden = true;
    this.agentState('');
    this.reconnecting(false);
    this.#phase('ended', words);
    this.#callOver();
    this.#call.focus();
  }

  #phase(phase: 'idle' | 'connecting' | 'in-call' | 'ended', status: string): void {
    this.#root.dataset.phase = phase;
    this.#status.textContent = status;
    const inCall = phase === 'in-call';
    this.#call.disabled = phase === 'connecting' || inCall;
    this.#call.textContent = phase === 'ended' ? 'Call again' : 'Call';
    this.#hangUp.disabled = !inCall;
    this.#mute.disabled = !inCall;
    if (!inCall) this.#micState.textContent = '—';
    this.#endForAll.disabled = !inCall;
    this.#message.disabled = !inCall;
    this.#chat.querySelector('button')!.disabled = !inCall;
    if (!inCall) delete this.#root.dataset.agentAudio;
  }

  #showAlert(message: string): void {
    this.#alert.textContent = message;
    this.#alert.hidden = !message;
  }

  #stopClock(): void {
    clearInterval(this.#clock);
    this.#clock = undefined;
  }
}
