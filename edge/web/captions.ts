import type { TextStreamReader } from 'livekit-client';

const SEGMENT = 'lk.segment_id';
const FINAL = 'lk.transcription_final';

/**
 * Live captions from `lk.transcription` text streams. The agent streams its own words as deltas in
 * one stream per segment (final when the stream closes); the caller's words arrive as a new stream
 * per interim result, each with the whole text so far, the last one marked final. Either way the
 * caption for a segment shows the latest stream's text, marked interim until it is final.
 */
export class Captions {
  readonly #list: HTMLOListElement;
  readonly #bySegment = new Map<string, HTMLLIElement>();

  constructor(list: HTMLOListElement) {
    this.#list = list;
  }

  clear(): void {
    this.#list.replaceChildren();
    this.#bySegment.clear();
  }

  /** `who` is decided by the caller from the stream's sender (from-agent.ts captionSpeaker). */
  async follow(reader: TextStreamReader, who: 'you' | 'assistant'): Promise<void> {
    const attributes = reader.info.attributes ?? {};
    const mine = who === 'you';
    const item = this.#item(attributes[SEGMENT] ?? reader.info.id, who);
    let text = '';
    try {
      for await (const chunk of reader) {
        text += chunk;
        this.#show(item, text, false);
      }
    } catch {
      /* the stream was cut (the call ended): keep what arrived */
    }
    this.#show(item, text, attributes[FINAL] === 'true' || !mine);
  }

  /** A message the caller typed on lk.chat: shown as sent. */
  typed(text: string): void {
    this.#show(this.#item(`typed-${crypto.randomUUID()}`, 'you'), text, true);
  }

  #item(segment: string, who: 'you' | 'assistant'): HTMLLIElement {
    let item = this.#bySegment.get(segment);
    if (!item) {
      item = document.createElement('li');
      item.dataset.who = who;
      const label = document.createElement('span');
      label.className = 'who';
      label.textContent = who === 'you' ? 'You' : 'Assistant';
      const words = document.createElement('span');
      words.className = 'words';
      item.append(label, words);
      this.#bySegment.set(segment, item);
      this.#list.append(item);
    }
    return item;
  }

  #show(item: HTMLLIElement, text: string, final: boolean): void {
    item.querySelector('.words')!.textContent = text;
    item.dataset.final = String(final);
    item.scrollIntoView?.({ block: 'nearest' });
  }
}
