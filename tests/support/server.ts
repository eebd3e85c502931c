// The test suite's Neon stand-in: `pgsession dev-proxy`'s handlers (cli/dev_proxy/) on a server of
// its own, with test controls beside them (/__stats, /__reset, /__delay), a delay before each HTTP
// round trip, and WebSocket tunnels routed through a relay that counts statements (ws_proxy.ts).
// Run as a script it prints `READY <port>` and serves until it is killed or its stdin closes, so
// a parent that dies cannot leave it running.
import http from "node:http";
import process from "node:process";
import type { Duplex } from "node:stream";
import { pathToFileURL } from "node:url";
import { isLoopbackHost } from "../../cli/dev_proxy/loopback.ts";
import { createDevProxy, type DevProxy, listen, stopListening } from "../../cli/dev_proxy/server.ts";
import { parseAddress } from "../../cli/dev_proxy/ws_proxy.ts";
import { type RelayCounters, startStatementRelay, type StatementRelay } from "./ws_proxy.ts";

export interface SupportStats {
  http: { requests: number; statements: number };
  ws: RelayCounters;
}

export interface RunningSupportServer {
  port: number;
  close(): Promise<void>;
}

export async function startServer(port: number = 0): Promise<RunningSupportServer> {
  const proxy: DevProxy = createDevProxy();
  const ws: RelayCounters = { connections: 0, statements: 0 };
  // The proxy's HTTP counters only grow; /__reset moves the baseline.
  let httpBaseline: SupportStats["http"] = { requests: 0, statements: 0 };
  let delayMs: number = 0;
  const relays: Map<string, Promise<StatementRelay>> = new Map();

  const stats = (): SupportStats => ({
    http: {
      requests: proxy.stats.http.requests - httpBaseline.requests,
      statements: proxy.stats.http.statements - httpBaseline.statements,
    },
    ws: { ...ws },
  });

  /** Handles a test control; false for anything else. */
  function control(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const url: URL = new URL(req.url ?? "/", "http://localhost");
    const route: string = `${req.method ?? ""} ${url.pathname}`;
    const json = (status: number, body: unknown): true => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
      return true;
    };
    if (route === "GET /__stats") return json(200, stats());
    if (route === "POST /__reset") {
      httpBaseline = { ...proxy.stats.http };
      Object.assign(ws, { connections: 0, statements: 0 });
      return json(200, stats());
    }
    if (route === "POST /__delay") {
      const ms: number = Number(url.searchParams.get("ms"));
      if (!Number.isFinite(ms) || ms < 0) return json(400, { message: "ms must be a number >= 0" });
      delayMs = ms;
      return json(200, { delayMs: ms });
    }
    return false;
  }

  /** The relay in front of a loopback PostgreSQL, started on first use. */
  function relayFor(target: { host: string; port: number }): Promise<StatementRelay> {
    const key: string = `${target.host}:${target.port}`;
    let relay: Promise<StatementRelay> | undefined = relays.get(key);
    if (relay === undefined) {
      relay = startStatementRelay(target, ws, (): number => delayMs);
      relays.set(key, relay);
    }
    return relay;
  }

  const server: http.Server = http.createServer((req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (control(req, res)) return;
    if (delayMs > 0) setTimeout((): void => proxy.handleRequest(req, res), delayMs);
    else proxy.handleRequest(req, res);
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url: URL = new URL(req.url ?? "/", "http://localhost");
    const target = parseAddress(url.searchParams.get("address") ?? "");
    // Anything the proxy must refuse reaches it unchanged, so it is refused as a user would see.
    if (target === undefined || !isLoopbackHost(target.host)) return proxy.handleUpgrade(req, socket, head);
    relayFor(target).then((relay: StatementRelay): void => {
      url.searchParams.set("address", `127.0.0.1:${relay.port}`);
      req.url = url.pathname + url.search;
      proxy.handleUpgrade(req, socket, head);
    }, (): void => void socket.destroy());
  });
  const listening: number = await listen(server, port, "127.0.0.1");
  return {
    port: listening,
    close: async (): Promise<void> => {
      await proxy.close();
      await Promise.all([...relays.values()].map(async (relay) => (await relay).close()));
      await stopListening(server);
    },
  };
}

async function main(): Promise<void> {
  const running: RunningSupportServer = await startServer(Number(process.env.SUPPORT_PORT ?? 0));
  let stopping: boolean = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    running.close().finally((): never => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
  process.stdout.write(`READY ${running.port}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown): void => {
    console.error(error);
    process.exit(1);
  });
}
