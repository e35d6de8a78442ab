import { byId } from './dom.ts';

/** The modal that asks before an end: Cancel (focused) or the named action; Escape cancels. */
export class ConfirmDialog {
  readonly #dialog: HTMLDialogElement;
  readonly #text: HTMLElement;
  readonly #yes: HTMLElement;
  readonly #no: HTMLElement;

  constructor(root: HTMLElement) {
    this.#dialog = byId(root, 'confirm');
    this.#text = byId(root, 'confirm-text');
    this.#yes = byId(root, 'confirm-yes');
    this.#no = byId(root, 'confirm-no');
  }

  ask(question: string, yes: string): Promise<boolean> {
    this.#text.textContent = question;
    this.#yes.textContent = yes;
    this.#dialog.showModal();
    this.#no.focus();
    return new Promise((resolve) => {
      const done = (ok: boolean) => () => {
        this.#dialog.close();
        resolve(ok);
      };
      this.#yes.onclick = done(true);
      this.#no.onclick = done(false);
      this.#dialog.oncancel = done(false);
    });
  }
}
