/**
 * A local stand-in for Neon's `wsproxy`: `GET /v1?address=HOST:PORT` becomes a WebSocket whose
 * binary messages are the raw Postgres protocol bytes of one TCP connection. The WebSocket
 * server is the `ws` package's, an optional peer dependency that only `dev-proxy` loads.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { isLoopbackHost } from "./loopback.ts";

/** Counters the proxy adds to as it relays. */
export interface WsCounters {
  /** WebSocket connections accepted, each one TCP connection to PostgreSQL. */
  connections: number;
}

/** A proxy to attach to an HTTP server's `upgrade` event. */
export interface WsProxy {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Ends every tunnel at once. */
  close(): Promise<void>;
}

/** Parses `HOST:PORT` or `[V6]:PORT`; the last colon separates the port. */
export function parseAddress(address: string): { host: string; port: number } | undefined {
  const colon: number = address.lastIndexOf(":");
  if (colon <= 0) return undefined;
  const host: string = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port: number = Number(address.slice(colon + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { host, port };
}

/** Answers a bad upgrade request with a plain HTTP status and closes the socket. */
function refuseUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/**
 * Creates the proxy. Only loopback targets are dialled: it must never become an open relay.
 *
 * @param counters Where to count accepted connections.
 * @returns The upgrade handler and a `close()` that ends every tunnel.
 */
export function createWsProxy(counters: WsCounters): WsProxy {
  // No extensions: frames are never compressed, as with Neon's proxy.
  const server: WebSocketServer = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  /** How to end each open tunnel at once. */
  const tunnels: Set<() => void> = new Set();

  function bridge(ws: WebSocket, socket: Duplex, host: string, port: number): void {
    counters.connections += 1;
    const tcp: net.Socket = net.connect({ host, port });
    tcp.setNoDelay(true);
    const terminate = (): void => {
      ws.terminate();
      tcp.destroy();
    };
    tunnels.add(terminate);
    // Either side ending ends the other: a half-open tunnel would hang the driver. The server's
    // last bytes (an error before it hangs up) are sent before the close frame.
    const closeBoth = (): void => {
      tunnels.delete(terminate);
      tcp.destroy();
      ws.close();
    };
    ws.on("message", (data: Buffer): void => {
      // Back-pressure both ways: stop reading one side while the other is behind.
      if (!tcp.destroyed && !tcp.write(data)) ws.pause();
    });
    tcp.on("drain", (): void => ws.resume());
    tcp.on("data", (chunk: Buffer): void => {
      ws.send(chunk, { binary: true });
      if (socket.writableNeedDrain) tcp.pause();
    });
    socket.on("drain", (): void => void tcp.resume());
    ws.on("close", closeBoth);
    ws.on("error", closeBoth);
    tcp.on("close", closeBoth);
    tcp.on("error", closeBoth);
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url: URL = new URL(req.url ?? "/", "http://localhost");
    const target: { host: string; port: number } | undefined = parseAddress(url.searchParams.get("address") ?? "");
    // /v2 is the driver's default path; both mean the same here.
    if (url.pathname !== "/v1" && url.pathname !== "/v2") return refuseUpgrade(socket, "404 Not Found");
    if (target === undefined) return refuseUpgrade(socket, "400 Bad Request");
    if (!isLoopbackHost(target.host)) return refuseUpgrade(socket, "403 Forbidden");
    server.handleUpgrade(req, socket, head, (ws: WebSocket): void => bridge(ws, socket, target.host, target.port));
  }

  function close(): Promise<void> {
    for (const terminate of tunnels) terminate();
    tunnels.clear();
    return new Promise<void>((resolve: () => void): void => server.close((): void => resolve()));
  }

  return { handleUpgrade, close };
}
