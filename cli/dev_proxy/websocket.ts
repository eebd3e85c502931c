/**
 * The server side of RFC 6455 WebSockets on a `node:http` upgrade, as much as a byte tunnel
 * needs: the handshake, masked client frames in (fragmented or not), binary frames out, ping,
 * close. No extensions are negotiated, so frames are never compressed. Written out here so the
 * `pgsession` command needs no WebSocket package.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

/** What the tunnel hears from one client. */
export interface WebSocketHandlers {
  /** The payload of a text, binary or continuation frame, unmasked, in order. */
  data(payload: Buffer): void;
  /** Called once, when the connection is gone for whatever reason. */
  close(): void;
}

/** One accepted connection. */
export interface ServerWebSocket {
  /** Sends one binary message; returns false when the socket's buffer is full (see `drain`). */
  send(payload: Uint8Array): boolean;
  /** Sends a close frame and ends the connection. */
  close(code?: number): void;
  /** Ends the connection at once, without a close frame. */
  terminate(): void;
  /** The underlying socket, for `pause()`/`resume()` and its `drain` event. */
  readonly socket: Duplex;
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** A Postgres message is at most 1 GB; no sane client sends a frame bigger than this. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** Answers a bad upgrade request with a plain HTTP status and closes the socket. */
export function refuseUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/**
 * Completes the opening handshake and starts reading frames.
 *
 * @param req The upgrade request.
 * @param socket The socket `node:http` hands to its `upgrade` listeners.
 * @param head Bytes already read past the request head.
 * @param handlers Where frames and the close go.
 * @returns The connection, or undefined when the request was not a valid WebSocket upgrade
 *   (it has then been answered with 400 or 426).
 */
export function acceptWebSocket(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  handlers: WebSocketHandlers,
): ServerWebSocket | undefined {
  const key = req.headers["sec-websocket-key"];
  if (
    req.headers.upgrade?.toLowerCase() !== "websocket" || typeof key !== "string" || !/^[A-Za-z0-9+/]{22}==$/.test(key)
  ) {
    refuseUpgrade(socket, "400 Bad Request");
    return undefined;
  }
  if (req.headers["sec-websocket-version"] !== "13") {
    socket.end(
      "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    return undefined;
  }
  const accept = createHash("sha1").update(key + GUID).digest("base64");
  // Echo the first subprotocol offered, as the `ws` package does: browsers fail a handshake
  // that ignores the protocols they asked for.
  const protocol = req.headers["sec-websocket-protocol"]?.split(",")[0]?.trim();
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${accept}\r\n` + (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : "") + "\r\n",
  );
  if ("setNoDelay" in socket && typeof socket.setNoDelay === "function") socket.setNoDelay(true);

  let buffered: Buffer = head.length ? Buffer.from(head) : Buffer.alloc(0);
  let closed = false;
  let closing = false;

  const finish = (): void => {
    if (closed) return;
    closed = true;
    handlers.close();
  };

  const write = (opcode: number, payload: Uint8Array): boolean => {
    if (closing || socket.destroyed) return false;
    return socket.write(Buffer.concat([frameHead(opcode, payload.length), payload]));
  };

  const ws: ServerWebSocket = {
    socket,
    send: (payload: Uint8Array): boolean => write(OP_BINARY, payload),
    close: (code = 1000): void => {
      if (closing || socket.destroyed) return;
      const body = Buffer.alloc(2);
      body.writeUInt16BE(code, 0);
      write(OP_CLOSE, body);
      closing = true;
      socket.end();
    },
    terminate: (): void => {
      closing = true;
      socket.destroy();
    },
  };

  /** Reads every complete frame in the buffer; false when the connection must end. */
  const parse = (): boolean => {
    while (buffered.length >= 2) {
      const first = buffered[0]!;
      const second = buffered[1]!;
      const opcode = first & 0x0f;
      if ((first & 0x70) !== 0 || (second & 0x80) === 0) return protocolError(1002); // RSV bits or an unmasked client frame
      let length = second & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return true;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return true;
        const big = buffered.readBigUInt64BE(2);
        if (big > BigInt(MAX_FRAME_BYTES)) return protocolError(1009);
        length = Number(big);
        offset = 10;
      }
      if (length > MAX_FRAME_BYTES) return protocolError(1009);
      if (buffered.length < offset + 4 + length) return true;
      const mask = buffered.subarray(offset, offset + 4);
      const payload = Buffer.from(buffered.subarray(offset + 4, offset + 4 + length));
      for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      buffered = buffered.subarray(offset + 4 + length);
      switch (opcode) {
        case OP_CONTINUATION:
        case OP_TEXT:
        case OP_BINARY:
          // The tunnel carries a byte stream: message boundaries do not matter, fragments are
          // passed on as they come.
          if (payload.length) handlers.data(payload);
          break;
        case OP_PING:
          write(OP_PONG, payload);
          break;
        case OP_PONG:
          break;
        case OP_CLOSE:
          ws.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1000);
          return false;
        default:
          return protocolError(1002);
      }
    }
    return true;
  };

  const protocolError = (code: number): false => {
    ws.close(code);
    return false;
  };

  socket.on("data", (chunk: Buffer): void => {
    if (closing) return;
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    if (!parse()) buffered = Buffer.alloc(0);
  });
  socket.on("error", (): void => void socket.destroy());
  socket.on("close", finish);
  // Some clients half-close after their close frame; end our side too.
  socket.on("end", (): void => void socket.end());
  if (buffered.length) queueMicrotask((): void => void (parse() || (buffered = Buffer.alloc(0))));
  return ws;
}

/** The head of an unmasked server frame with FIN set. */
function frameHead(opcode: number, length: number): Buffer {
  if (length < 126) return Buffer.from([0x80 | opcode, length]);
  if (length < 65_536) {
    const head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(length, 2);
    return head;
  }
  const head = Buffer.alloc(10);
  head[0] = 0x80 | opcode;
  head[1] = 127;
  head.writeBigUInt64BE(BigInt(length), 2);
  return head;
}
