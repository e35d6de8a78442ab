import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A reverse proxy in front of the real edge that can refuse the report endpoint, to show what the
 * agent does when the edge is down during cleanup. Everything else passes through untouched.
 */
export type FaultProxy = {
  url: string;
  reportAttempts: number;
  refuseReports: number;
  close(): Promise<void>;
};

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const state: FaultProxy = { url: '', reportAttempts: 0, refuseReports: 0, close: async () => {} };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.url?.endsWith('/report')) {
      state.reportAttempts++;
      if (state.refuseReports > 0) {
        state.refuseReports--;
        res.writeHead(503, { 'content-type': 'application/json' });
        return res.end('{"error":{"code":"unavailable","message":"edge down (fault proxy)"}}');
      }
    }
    const upstream = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers: Object.fromEntries(
        Object.entries(req.headers).filter(
          ([k]) => !['host', 'connection', 'content-length'].includes(k),
        ) as [string, string][],
      ),
      body: ['GET', 'HEAD'].includes(req.method ?? 'GET') ? undefined : Buffer.concat(chunks),
    });
    res.writeHead(upstream.status, {
      'content-type': upstream.headers.get('content-type') ?? 'application/json',
    });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}
