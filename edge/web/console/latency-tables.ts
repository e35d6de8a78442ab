import { h } from './dom.ts';
import { LATENCY_MEASURES, timeInWords, type Call } from './model.ts';

const ms = (n: number | undefined) => (n == null ? '—' : `${Math.round(n)} ms`);

/**
 * One call's latency from its report: p50/p95 per measure (`#latency-summary`) and each turn's
 * measures (`#latency-turns`), or a line saying why there is none.
 */
export function latencyTables(c: Call, now: Date): Node {
  const r = c.report;
  const measured = LATENCY_MEASURES.filter(([k]) => r?.latency?.[k]);
  if (!r || (!measured.length && !r.turns?.length))
    return h(
      'p',
      { class: 'none' },
      !r ? '—' : r.latency ? 'No answered turns were measured.' : 'This report has no latency.',
    );
  const wrap = h('div', {});
  if (r.latency && measured.length)
    wrap.append(
      h(
        'table',
        { id: 'latency-summary', class: 'compact' },
        h('caption', {}, `Over ${r.latency.turns} turn${r.latency.turns === 1 ? '' : 's'}`),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', { scope: 'col' }, 'Measure'),
            ...['p50', 'p95'].map((t) => h('th', { scope: 'col', class: 'num' }, t)),
          ),
        ),
        h(
          'tbody',
          {},
          ...measured.map(([k, label]) =>
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, label),
              h('td', { class: 'num' }, ms(r.latency![k]!.p50)),
              h('td', { class: 'num' }, ms(r.latency![k]!.p95)),
            ),
          ),
        ),
      ),
    );
  if (r.turns?.length)
    wrap.append(
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'latency-turns' },
          h('caption', {}, 'Each turn'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Turn'),
              ...LATENCY_MEASURES.map(([, label]) =>
                h('th', { scope: 'col', class: 'num' }, label),
              ),
            ),
          ),
          h(
            'tbody',
            {},
            ...r.turns.map((t) =>
              h(
                'tr',
                {},
                h('td', {}, timeInWords(t.at, now), t.interrupted ? ' (interrupted)' : ''),
                ...LATENCY_MEASURES.map(([k]) => h('td', { class: 'num' }, ms(t[k]))),
              ),
            ),
          ),
        ),
      ),
    );
  return wrap;
}
