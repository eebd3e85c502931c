// A TCP proxy to PostgreSQL that holds every client → server chunk for a fixed delay (order kept),
// so each database round trip of a TCP driver costs that delay once: the same model as the
// local /sql endpoint's per-request delay for the HTTP transport.
import net from "node:net";
import type { AddressInfo } from "node:net";

export interface DelayProxy {
  port: number;
  setDelay(ms: number): void;
  close(): Promise<void>;
}

export async function startDelayProxy(target: { host: string; port: number }): Promise<DelayProxy> {
  let delayMs = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    // Chunks leave in arrival order, each `delayMs` after it arrived.
    let last = 0;
    client.on("data", (chunk) => {
      const due = Math.max(performance.now() + delayMs, last);
      last = due;
      if (delayMs === 0) upstream.write(chunk);
      else setTimeout(() => upstream.write(chunk), due - performance.now());
    });
    upstream.on("data", (chunk) => client.write(chunk));
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    setDelay: (ms) => void (delayMs = ms),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
