/**
 * A local stand-in for Neon's `wsproxy`: `GET /v1?address=HOST:PORT` becomes a WebSocket whose
 * binary messages are the raw Postgres protocol bytes of one TCP connection. It also counts the
 * statements clients send, so tests can assert how many round trips a code path costs.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { isLoopbackHost } from "./loopback.ts";
import { acceptWebSocket, refuseUpgrade, type ServerWebSocket } from "./websocket.ts";

/** Counters the proxy adds to as it relays. */
export interface WsCounters {
  connections: number;
  statements: number;
}

/** How a proxy is set up. */
export interface WsProxyOptions {
  counters: WsCounters;
  /** Read per client message: each one is held back this long before reaching Postgres. */
  delayMs: () => number;
}

/** A proxy to attach to an HTTP server's `upgrade` event. */
export interface WsProxy {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): Promise<void>;
}

const SSL_REQUEST_CODE: number = 80877103;
const GSSENC_REQUEST_CODE: number = 80877104;
const QUERY: number = 0x51; // 'Q'
// A prepared statement runs again with Bind/Execute and no Parse: count Executes, not Parses.
const EXECUTE: number = 0x45; // 'E'

/**
 * Splits the frontend (client to server) byte stream into messages, whatever the framing.
 * Start-up packets have no type byte (int32 length + int32 code); after the StartupMessage every
 * message is 1 type byte + int32 length (which counts itself but not the type byte).
 */
export class FrontendStatementCounter {
  private startup: boolean = true;
  private readonly head: Buffer = Buffer.alloc(8);
  private headFilled: number = 0;
  private bodyLeft: number = 0;
  /** Set once the stream is TLS-encrypted or malformed: we cannot see messages any more. */
  private opaque: boolean = false;
  private awaitingEncryptionReply: boolean = false;

  /** Feeds client bytes; returns how many Query/Execute messages started in them. */
  feed(chunk: Uint8Array): number {
    let found: number = 0;
    let i: number = 0;
    while (i < chunk.length && !this.opaque) {
      if (this.bodyLeft > 0) {
        const n: number = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= n;
        i += n;
        continue;
      }
      const headSize: number = this.startup ? 8 : 5;
      const n: number = Math.min(headSize - this.headFilled, chunk.length - i);
      this.head.set(chunk.subarray(i, i + n), this.headFilled);
      this.headFilled += n;
      i += n;
      if (this.headFilled < headSize) break;
      this.headFilled = 0;
      if (this.startup) {
        const length: number = this.head.readInt32BE(0);
        const code: number = this.head.readInt32BE(4);
        this.bodyLeft = length - 8;
        if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) this.awaitingEncryptionReply = true;
        else this.startup = false;
        if (length < 8) this.opaque = true;
      } else {
        const length: number = this.head.readInt32BE(1);
        this.bodyLeft = length - 4;
        if (this.head[0] === QUERY || this.head[0] === EXECUTE) found += 1;
        if (length < 4) this.opaque = true;
      }
    }
    return found;
  }

  /** Server bytes: only the one-byte answer to an SSL/GSS request matters ('S'/'G' = encrypted). */
  observeServer(chunk: Uint8Array): void {
    if (!this.awaitingEncryptionReply || chunk.length === 0) return;
    this.awaitingEncryptionReply = false;
    if (chunk[0] === 0x53 || chunk[0] === 0x47) this.opaque = true;
  }
}

/** Parses `HOST:PORT` or `[V6]:PORT`; the last colon separates the port. */
function parseAddress(address: string): { host: string; port: number } | undefined {
  const colon: number = address.lastIndexOf(":");
  if (colon <= 0) return undefined;
  const host: string = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port: number = Number(address.slice(colon + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { host, port };
}

/**
 * Creates the proxy. Only loopback targets are dialled: it must never become an open relay.
 *
 * @param options Counters and the test delay.
 * @returns The upgrade handler and a `close()` that ends every tunnel.
 */
export function createWsProxy(options: WsProxyOptions): WsProxy {
  /** How to end each open tunnel at once. */
  const tunnels: Set<() => void> = new Set();

  function bridge(req: IncomingMessage, socket: Duplex, head: Buffer, host: string, port: number): void {
    const counter: FrontendStatementCounter = new FrontendStatementCounter();
    const tcp: net.Socket = net.connect({ host, port });
    tcp.setNoDelay(true);
    // Writes are chained so that a delay never reorders bytes.
    let forwarding: Promise<void> = Promise.resolve();
    const terminate = (): void => {
      ws?.terminate();
      tcp.destroy();
    };
    let pending: number = 0;
    const write = (bytes: Buffer): void => {
      if (tcp.destroyed) return;
      // Back-pressure: stop reading the WebSocket while PostgreSQL is behind.
      if (!tcp.write(bytes)) socket.pause();
    };
    // Either side ending ends the other: a half-open tunnel would hang the driver.
    const closeBoth = (): void => {
      tunnels.delete(terminate);
      tcp.destroy();
      ws?.close();
    };
    const ws: ServerWebSocket | undefined = acceptWebSocket(req, socket, head, {
      data: (bytes: Buffer): void => {
        options.counters.statements += counter.feed(bytes);
        const delay: number = options.delayMs();
        if (delay <= 0 && !pending) {
          write(bytes);
          return;
        }
        pending++;
        forwarding = forwarding
          .then((): Promise<void> | void =>
            delay > 0
              ? new Promise<void>((r: () => void): void => {
                setTimeout(r, delay);
              })
              : undefined
          )
          .then((): void => {
            pending--;
            write(bytes);
          });
      },
      close: closeBoth,
    });
    if (ws === undefined) {
      tcp.destroy();
      return;
    }
    options.counters.connections += 1;
    tunnels.add(terminate);
    tcp.on("drain", (): void => void socket.resume());
    socket.on("drain", (): void => void tcp.resume());
    tcp.on("data", (chunk: Buffer): void => {
      counter.observeServer(chunk);
      if (!ws.send(chunk)) tcp.pause();
    });
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
    bridge(req, socket, head, target.host, target.port);
  }

  function close(): Promise<void> {
    for (const terminate of tunnels) terminate();
    tunnels.clear();
    return Promise.resolve();
  }

  return { handleUpgrade, close };
}
