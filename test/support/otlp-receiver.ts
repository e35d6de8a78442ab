import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type OtlpPost = { path: string; contentType?: string; body: Buffer; at: number };

/**
 * A tiny OTLP/HTTP receiver: every POST body (protobuf), as the exporter sent it, with the time
 * it arrived. `answerAfterMs` makes it a slow collector: each answer comes that much later.
 */
export async function otlpReceiver({ answerAfterMs = 0 } = {}) {
  const posts: OtlpPost[] = [];
  let arrived: () => void = () => {};
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    posts.push({
      path: req.url ?? '',
      contentType: req.headers['content-type'],
      body: Buffer.concat(chunks),
      at: Date.now(),
    });
    arrived();
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    }, answerAfterMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    posts,
    /** Resolves at the next post. */
    next: () => new Promise<void>((r) => (arrived = r)),
    /** Every body received so far, as text (protobuf keeps strings as UTF-8 bytes). */
    text: () => Buffer.concat(posts.map((p) => p.body)).toString('utf8'),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
