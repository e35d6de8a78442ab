import { endReasonInWords } from './model.ts';

const SVG = 'http://www.w3.org/2000/svg';

function el<K extends keyof SVGElementTagNameMap>(
  name: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(width: number, height: number, label: string): SVGSVGElement {
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label });
  svg.append(el('title', {}, label));
  return svg;
}

/** Calls per hour: one column per hour, the count above it, the hour below every few columns. */
export function hourlyChart(bins: { hour: number; count: number }[]): SVGSVGElement {
  const W = 320;
  const H = 120;
  const total = bins.reduce((n, b) => n + b.count, 0);
  const svg = frame(W, H, `Calls per hour: ${total} calls over ${bins.length} hours`);
  if (!bins.length) {
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'No calls loaded'));
    return svg;
  }
  const max = Math.max(...bins.map((b) => b.count));
  const step = (W - 8) / bins.length;
  const top = 14;
  const base = H - 18;
  const every = Math.ceil(bins.length / 6);
  bins.forEach((b, i) => {
    const h = max ? ((base - top) * b.count) / max : 0;
    const x = 4 + i * step;
    const when = new Date(b.hour).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const bar = el('rect', {
      x: x + step * 0.12,
      y: base - h,
      width: step * 0.76,
      height: Math.max(h, b.count ? 1 : 0),
      class: 'bar',
    });
    bar.append(el('title', {}, `${when}: ${b.count} calls`));
    svg.append(bar);
    if (b.count)
      svg.append(
        el('text', { x: x + step / 2, y: base - h - 3, 'text-anchor': 'middle' }, `${b.count}`),
      );
    if (i % every === 0)
      svg.append(el('text', { x: x + step / 2, y: H - 4, 'text-anchor': 'middle' }, when));
  });
  svg.append(el('line', { x1: 0, x2: W, y1: base, y2: base, class: 'axis' }));
  return svg;
}

/** End reasons: one row per reason, a bar as long as its share, the words and the count. */
export function reasonsChart(rows: { reason: string; count: number }[]): SVGSVGElement {
  const W = 320;
  const ROW = 22;
  const H = Math.max(ROW, rows.length * ROW) + 4;
  const total = rows.reduce((n, r) => n + r.count, 0);
  const svg = frame(
    W,
    H,
    `End reasons: ${rows.map((r) => `${r.reason} ${r.count}`).join(', ') || 'none'}`,
  );
  if (!rows.length) {
    svg.append(el('text', { x: W / 2, y: H / 2 + 4, 'text-anchor': 'middle' }, 'No calls loaded'));
    return svg;
  }
  const max = Math.max(...rows.map((r) => r.count));
  const LABEL = 118;
  rows.forEach((r, i) => {
    const y = 2 + i * ROW;
    const w = ((W - LABEL - 34) * r.count) / max;
    const row = el('g', { class: `reason reason-${r.reason}` });
    row.append(
      el('title', {}, `${r.reason}: ${r.count} of ${total} — ${endReasonInWords(r.reason)}`),
      el('text', { x: LABEL - 6, y: y + 15, 'text-anchor': 'end' }, r.reason),
      el('rect', { x: LABEL, y: y + 3, width: Math.max(w, 1), height: ROW - 6, class: 'bar' }),
      el('text', { x: LABEL + w + 4, y: y + 15 }, String(r.count)),
    );
    svg.append(row);
  });
  return svg;
}
