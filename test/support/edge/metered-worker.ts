// The edge Worker with its D1 binding metered (./d1-meter.ts), for `npm run bench:ledger`.
// `GET /__meter` answers the counts since the last `POST /__meter/reset`, the call objects' with
// them; `POST /__ring/:room` runs a call object's alarm now, as it runs when its time comes;
// everything else is the edge itself, unchanged.
import worker from '../../../edge/index.ts';
import { Call as EdgeCall } from '../../../edge/call/call-object.ts';
import { meteredD1, type MeteredD1 } from './d1-meter.ts';

let meter: MeteredD1 | undefined;
const metered = (env: Env): Env => {
  meter ??= meteredD1(env.LEDGER);
  return { ...env, LEDGER: meter.db };
};

/** What the call objects cost: requests (RPC calls and alarm runs, as Cloudflare bills them) and storage writes. */
const NONE = { requests: 0, storageWrites: 0 };
const objects = { ...NONE };
const STORAGE_WRITES = new Set(['put', 'delete', 'deleteAll', 'setAlarm', 'deleteAlarm']);

/** The object's state with its storage writes counted. */
function countingWrites(ctx: DurableObjectState): DurableObjectState {
  const storage = new Proxy(ctx.storage, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (STORAGE_WRITES.has(String(key))) objects.storageWrites += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return new Proxy(ctx, {
    get(target, key) {
      if (key === 'storage') return storage;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

export class Call extends EdgeCall {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, metered(env));
    // The runtime's base class takes only the real state; the object reads `this.ctx` after it.
    Object.defineProperty(this, 'ctx', { value: countingWrites(ctx) });
  }
  override async watch(room: string, at: number): Promise<void> {
    objects.requests += 1;
    return super.watch(room, at);
  }
  override async alarm(): Promise<void> {
    objects.requests += 1;
    return super.alarm();
  }
  /** The bench's hook: the alarm's work as its time comes, if one is set (not counted as a request itself). */
  async ringNow(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) !== null) await this.alarm();
  }
  override async forget(): Promise<void> {
    objects.requests += 1;
    return super.forget();
  }
}

export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    if (pathname === '/__meter') {
      metered(env);
      return Response.json({ counts: { ...meter!.counts, ...objects }, log: meter!.log });
    }
    if (pathname === '/__meter/reset') {
      metered(env);
      meter!.reset();
      Object.assign(objects, NONE);
      return Response.json({ ok: true });
    }
    if (pathname.startsWith('/__ring/')) {
      const room = decodeURIComponent(pathname.slice('/__ring/'.length));
      const stub = env.CALLS.get(env.CALLS.idFromName(room)) as unknown as {
        ringNow(): Promise<void>;
      };
      await stub.ringNow();
      return Response.json({ ok: true });
    }
    return worker.fetch(request, metered(env), ctx);
  },
  async scheduled(controller, env) {
    await worker.scheduled(controller, metered(env));
  },
} satisfies ExportedHandler<Env>;
