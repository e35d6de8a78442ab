/**
 * Building the console's DOM. Text goes in as text nodes only: what the ledger holds
 * (transcripts, notes) is never parsed as markup.
 */
export type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/** A `<dl>` of facts, one `<div><dt><dd>` per row; a missing value reads as a dash. */
export const facts = (dl: HTMLElement, rows: [string, Child][]) =>
  dl.replaceChildren(...rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v ?? '—'))));

/** An element of console.html by id: missing markup fails the mount, not a later click. */
export function byId<T extends HTMLElement = HTMLElement>(root: HTMLElement, id: string): T {
  const el = root.querySelector<T>(`#${id}`);
  if (!el) throw new Error(`console markup is missing #${id}`);
  return el;
}
