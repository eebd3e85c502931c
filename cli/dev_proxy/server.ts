/**
 * One HTTP server serving both of Neon's transports in front of a local PostgreSQL: `POST /sql`
 * (the HTTP transport, `neon()`) and the `/v1?address=HOST:PORT` WebSocket (`Pool`/`Client`
 * through `neonConfig.wsProxy`). Used by `pgsession dev-proxy` and by the test suite.
 *
 * @module
 */

import http from "node:http";
import type { AddressInfo } from "node:net";
import { createSqlEndpoint, type HttpCounters, type SqlEndpoint, type SqlRequestEvent } from "./sql_endpoint.ts";
import { createWsProxy, type WsCounters, type WsProxy } from "./ws_proxy.ts";

/** Requests and statements relayed so far, per transport. */
export interface DevProxyStats {
  http: HttpCounters;
  ws: WsCounters;
}

/** How to start the proxy. */
export interface DevProxyOptions {
  /** The port; 0 picks a free one. */
  port: number;
  /** The address to listen on; loopback unless you mean to share your database. */
  host: string;
  /** Told about every `POST /sql` once answered. */
  onRequest?: (event: SqlRequestEvent) => void;
  /**
   * Routes served before the proxy's own (the test suite's controls); return true when handled.
   */
  extraRoutes?: (req: http.IncomingMessage, res: http.ServerResponse, proxy: RunningDevProxy) => boolean;
}

/** A listening proxy. */
export interface RunningDevProxy {
  /** The port it listens on. */
  readonly port: number;
  /** Live counters, reset by assigning zeros to their fields. */
  readonly stats: DevProxyStats;
  /** Delay added to each HTTP answer and each WebSocket client message (tests only). */
  delayMs: number;
  /** Stops listening, ends every tunnel and pool. */
  close(): Promise<void>;
}

/**
 * Starts the proxy.
 *
 * @param options Where to listen and the request log hook.
 * @returns Once listening.
 * @throws The `listen` error, e.g. `EADDRINUSE`.
 */
export async function startDevProxy(options: DevProxyOptions): Promise<RunningDevProxy> {
  const stats: DevProxyStats = { http: { requests: 0, statements: 0 }, ws: { connections: 0, statements: 0 } };
  const delayMs = (): number => running.delayMs;
  const sql: SqlEndpoint = createSqlEndpoint({ counters: stats.http, delayMs, onRequest: options.onRequest });
  const proxy: WsProxy = createWsProxy({ counters: stats.ws, delayMs });

  const server = http.createServer((req: http.IncomingMessage, res: http.ServerResponse): void => {
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (options.extraRoutes?.(req, res, running)) return;
    const { pathname } = new URL(req.url ?? "/", "http://localhost");
    if (req.method === "POST" && pathname === "/sql") {
      sql.handle(req, res).catch((error: unknown): void => json(500, { message: String(error) }));
    } else if (req.method === "OPTIONS" && pathname === "/sql") {
      // Browser-side callers (a dev server's page) ask first; Neon answers the same way.
      res.writeHead(204, {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "POST",
        "access-control-allow-headers": "*",
        "access-control-max-age": "86400",
      });
      res.end();
    } else {
      json(404, {
        message: `no route for ${
          req.method ?? ""
        } ${pathname}; this is pgsession dev-proxy: POST /sql, or a WebSocket to /v1?address=HOST:PORT`,
      });
    }
  });
  server.on("upgrade", proxy.handleUpgrade);

  await new Promise<void>((resolve: () => void, reject: (e: Error) => void): void => {
    server.once("error", reject);
    server.listen(options.port, options.host, (): void => {
      server.off("error", reject);
      resolve();
    });
  });

  const running: RunningDevProxy = {
    port: (server.address() as AddressInfo).port,
    stats,
    delayMs: 0,
    close: async (): Promise<void> => {
      await proxy.close();
      // Keep-alive sockets from fetch would otherwise hold server.close() open.
      server.closeAllConnections();
      await new Promise<void>((resolve: () => void): void => void server.close((): void => resolve()));
      await sql.close();
    },
  };
  return running;
}
