import { byId } from './dom.ts';

export type ViewName = 'sign-in' | 'calls' | 'call';

/**
 * Which of the console's three views shows, and the alert line above them. `data-view` on the
 * root (sign-in, calls, call) is the current one; tests follow it.
 */
export class ConsoleViews {
  readonly #root: HTMLElement;
  readonly #alert: HTMLElement;
  readonly #signIn: HTMLElement;
  readonly #calls: HTMLElement;
  readonly #call: HTMLElement;
  readonly signOut: HTMLButtonElement;

  constructor(root: HTMLElement) {
    this.#root = root;
    this.#alert = byId(root, 'alert');
    this.#signIn = byId(root, 'sign-in');
    this.#calls = byId(root, 'calls-view');
    this.#call = byId(root, 'call-view');
    this.signOut = byId(root, 'sign-out');
  }

  get current(): string | undefined {
    return this.#root.dataset.view;
  }

  show(name: ViewName): void {
    this.#root.dataset.view = name;
    this.#signIn.hidden = name !== 'sign-in';
    this.#calls.hidden = name !== 'calls';
    this.#call.hidden = name !== 'call';
    this.signOut.hidden = name === 'sign-in';
  }

  /** Says a refusal or failure in words; an empty message hides the line. */
  say(message: string): void {
    this.#alert.textContent = message;
    this.#alert.hidden = !message;
  }
}
