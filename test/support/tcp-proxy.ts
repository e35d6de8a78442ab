import { createConnection, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A plain TCP pipe in front of the LiveKit server's signal port, so a browser test can drop the
 * page's signal connection the way a network switch does: `cut()` closes every open connection,
 * and while `refusing` new ones are closed at once (the client keeps retrying). LiveKit's media
 * goes over UDP straight to the server and is not touched.
 */
export type TcpProxy = {
  url: string;
  host: string;
  /** Connections piped since the start. */
  connections: number;
  refusing: boolean;
  cut(): void;
  close(): Promise<void>;
};

export async function startTcpProxy(targetPort: () => number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    if (proxy.refusing) return client.destroy();
    proxy.connections++;
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort() });
    open.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const proxy: TcpProxy = {
    url: `ws://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    connections: 0,
    refusing: false,
    cut: () => open.forEach((s) => s.destroy()),
    close: () =>
      new Promise((resolve) => {
        open.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
  return proxy;
}
