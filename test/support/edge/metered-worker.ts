// The edge Worker with its D1 binding metered (./d1-meter.ts), for `npm run bench:ledger`.
// `GET /__meter` answers the counts since the last `POST /__meter/reset`; everything else is the
// edge itself, unchanged.
import worker from '../../../edge/index.ts';
import { meteredD1, type MeteredD1 } from './d1-meter.ts';

let meter: MeteredD1 | undefined;
const metered = (env: Env): Env => {
  meter ??= meteredD1(env.LEDGER);
  return { ...env, LEDGER: meter.db };
};

export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    if (pathname === '/__meter') {
      metered(env);
      return Response.json({ counts: meter!.counts, log: meter!.log });
    }
    if (pathname === '/__meter/reset') {
      metered(env);
      meter!.reset();
      return Response.json({ ok: true });
    }
    return worker.fetch(request, metered(env), ctx);
  },
  async scheduled(controller, env) {
    await worker.scheduled(controller, metered(env));
  },
} satisfies ExportedHandler<Env>;
