// The test suite's view of WebSocket traffic: a TCP relay between the dev proxy's WebSocket tunnels
// and PostgreSQL that counts the statements clients send (so tests can assert how many round trips
// a code path costs) and can hold each client message back (to make a connection observable while
// it is open). The shipped proxy knows nothing of it: the support server points each tunnel here.
import net from "node:net";

/** What the relay has counted. */
export interface RelayCounters {
  connections: number;
  statements: number;
}

/** A listening relay in front of one PostgreSQL. */
export interface StatementRelay {
  /** The loopback port to dial instead of PostgreSQL's. */
  port: number;
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

/**
 * Starts a relay to `host:port` on a free loopback port.
 *
 * @param target PostgreSQL's address.
 * @param counters Added to per accepted connection and per statement.
 * @param delayMs Read per client message: each one is held back this long before reaching PostgreSQL.
 */
export async function startStatementRelay(
  target: { host: string; port: number },
  counters: RelayCounters,
  delayMs: () => number,
): Promise<StatementRelay> {
  const sockets: Set<net.Socket> = new Set();
  const server: net.Server = net.createServer((client: net.Socket): void => {
    counters.connections += 1;
    const counter: FrontendStatementCounter = new FrontendStatementCounter();
    const db: net.Socket = net.connect(target);
    for (const s of [client, db]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on("close", (): void => {
        sockets.delete(s);
        client.destroy();
        db.destroy();
      });
      s.on("error", (): void => {});
    }
    // Writes are chained so that a delay never reorders bytes.
    let forwarding: Promise<void> = Promise.resolve();
    client.on("data", (chunk: Buffer): void => {
      counters.statements += counter.feed(chunk);
      const delay: number = delayMs();
      forwarding = forwarding
        .then((): Promise<void> | void =>
          delay > 0 ? new Promise<void>((resolve: () => void): void => void setTimeout(resolve, delay)) : undefined
        )
        .then((): void => void (db.destroyed || db.write(chunk)));
    });
    db.on("data", (chunk: Buffer): void => {
      counter.observeServer(chunk);
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve: () => void): void => void server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: (): Promise<void> => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve: () => void): void => void server.close((): void => resolve()));
    },
  };
}
