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
  return { ...env, LEDGER: meter.db, CALLS: countingRequests(env.CALLS) };
};

/**
 * What the call objects cost: requests (RPC calls and alarm runs, as Cloudflare bills them) and
 * storage writes (key-value writes, and the rows SQL statements wrote, as SQLite-backed objects
 * are billed).
 */
const NONE = { requests: 0, storageWrites: 0 };
const objects = { ...NONE };
let sqlCursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
const STORAGE_WRITES = new Set(['put', 'delete', 'deleteAll', 'setAlarm', 'deleteAlarm']);
const sqlRowsWritten = () => sqlCursors.reduce((n, c) => n + c.rowsWritten, 0);

/** The namespace with each RPC call on its stubs counted. */
function countingRequests(ns: Env['CALLS']): Env['CALLS'] {
  return new Proxy(ns, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (key !== 'get') return typeof value === 'function' ? value.bind(target) : value;
      return (...args: unknown[]) => {
        const stub = (value as (...a: unknown[]) => object).apply(target, args);
        return new Proxy(stub, {
          get(s, method) {
            const fn = Reflect.get(s, method, s) as unknown;
            if (typeof fn !== 'function') return fn;
            return (...a: unknown[]) => {
              objects.requests += 1;
              return Reflect.apply(fn as (...x: unknown[]) => unknown, s, a);
            };
          },
        });
      };
    },
  });
}

/** The object's state with its storage writes counted. */
function countingWrites(ctx: DurableObjectState): DurableObjectState {
  const sql = new Proxy(ctx.storage.sql, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (key !== 'exec') return typeof value === 'function' ? value.bind(target) : value;
      return (...args: unknown[]) => {
        const cursor = (
          value as (...a: unknown[]) => SqlStorageCursor<Record<string, SqlStorageValue>>
        ).apply(target, args);
        sqlCursors.push(cursor);
        return cursor;
      };
    },
  });
  const storage = new Proxy(ctx.storage, {
    get(target, key) {
      if (key === 'sql') return sql;
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
  override async alarm(): Promise<void> {
    objects.requests += 1;
    return super.alarm();
  }
  /** The bench's hook: the alarm's work as its time comes, if one is set (not counted as a request itself). */
  async ringNow(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) !== null) await this.alarm();
  }
}

export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    if (pathname === '/__meter') {
      metered(env);
      return Response.json({
        counts: {
          ...meter!.counts,
          ...objects,
          storageWrites: objects.storageWrites + sqlRowsWritten(),
        },
        log: meter!.log,
      });
    }
    if (pathname === '/__meter/reset') {
      metered(env);
      meter!.reset();
      Object.assign(objects, NONE);
      sqlCursors = [];
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
