// One HTTP server on 127.0.0.1 serving both Neon transports (POST /sql and the /v1 WebSocket
// proxy) plus test controls. Run as a script it prints `READY <port>` and serves until it is
// killed or its stdin closes, so a parent that dies cannot leave it running.
import http from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { createSqlEndpoint, type HttpCounters, type SqlEndpoint } from "./neon_sql_endpoint.ts";
import { createWsProxy, type WsCounters, type WsProxy } from "./ws_proxy.ts";

export interface SupportStats {
  http: HttpCounters;
  ws: WsCounters;
}

export interface RunningSupportServer {
  port: number;
  close(): Promise<void>;
}

export async function startServer(port: number = 0): Promise<RunningSupportServer> {
  const stats: SupportStats = { http: { requests: 0, statements: 0 }, ws: { connections: 0, statements: 0 } };
  let delayMs: number = 0;
  const sql: SqlEndpoint = createSqlEndpoint({ counters: stats.http, delayMs: (): number => delayMs });
  const proxy: WsProxy = createWsProxy({ counters: stats.ws, delayMs: (): number => delayMs });

  const server: http.Server = http.createServer((req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url: URL = new URL(req.url ?? "/", "http://localhost");
    const route: string = `${req.method ?? ""} ${url.pathname}`;
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (route === "POST /sql") {
      sql.handle(req, res).catch((error: unknown): void => json(500, { message: String(error) }));
    } else if (route === "GET /__stats") {
      json(200, stats);
    } else if (route === "POST /__reset") {
      // Mutate in place: the endpoint and proxy hold these same counter objects.
      Object.assign(stats.http, { requests: 0, statements: 0 });
      Object.assign(stats.ws, { connections: 0, statements: 0 });
      json(200, stats);
    } else if (route === "POST /__delay") {
      const ms: number = Number(url.searchParams.get("ms"));
      if (!Number.isFinite(ms) || ms < 0) return json(400, { message: "ms must be a number >= 0" });
      delayMs = ms;
      json(200, { delayMs });
    } else {
      json(404, { message: `no route for ${route}` });
    }
  });
  server.on("upgrade", proxy.handleUpgrade);

  await new Promise<void>((resolve: () => void, reject: (e: Error) => void): void => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });

  async function close(): Promise<void> {
    await proxy.close();
    // Keep-alive sockets from fetch would otherwise hold server.close() open.
    server.closeAllConnections();
    await new Promise<void>((resolve: () => void): void => { server.close((): void => resolve()); });
    await sql.close();
  }

  return { port: (server.address() as AddressInfo).port, close };
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
