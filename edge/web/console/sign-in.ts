import { byId } from './dom.ts';

const KEY = 'lkvc.console.admin-key';

/** Where the console keeps the admin key: this tab's session storage, never a URL. */
export type KeyStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

/** The tab's copy of the admin key, so a reload stays signed in; Sign out forgets it. */
export class SavedKey {
  readonly #storage: KeyStorage;
  constructor(storage: KeyStorage) {
    this.#storage = storage;
  }
  get(): string | null {
    return this.#storage.getItem(KEY);
  }
  save(key: string): void {
    this.#storage.setItem(KEY, key);
  }
  forget(): void {
    this.#storage.removeItem(KEY);
  }
}

/** The sign-in form: hands over a non-blank key; the key never stays in the field once accepted. */
export class SignInForm {
  readonly #input: HTMLInputElement;

  constructor(root: HTMLElement, onKey: (key: string) => void, signal: AbortSignal) {
    const form = byId<HTMLFormElement>(root, 'sign-in');
    this.#input = byId<HTMLInputElement>(root, 'admin-key');
    form.addEventListener(
      'submit',
      (event) => {
        event.preventDefault();
        const key = this.#input.value.trim();
        if (key) onKey(key);
      },
      { signal },
    );
  }

  focus(): void {
    this.#input.focus();
  }

  clear(): void {
    this.#input.value = '';
  }
}
