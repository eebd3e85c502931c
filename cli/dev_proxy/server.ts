/**
 * One HTTP server serving both of Neon's transports in front of a local PostgreSQL: `POST /sql`
 * (the HTTP transport, `neon()`) and the `/v1?address=HOST:PORT` WebSocket (`Pool`/`Client`
 * through `neonConfig.wsProxy`). Used by `pgsession dev-proxy`; the test suite serves the same
 * handlers on a server of its own, with its controls beside them.
 *
 * @module
 */

import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { createSqlEndpoint, type HttpCounters, type SqlEndpoint, type SqlRequestEvent } from "./sql_endpoint.ts";
import { createWsProxy, type WsCounters, type WsProxy } from "./ws_proxy.ts";

/** Requests and statements relayed so far, per transport. */
export interface DevProxyStats {
  http: HttpCounters;
  ws: WsCounters;
}

/** How to set up the proxy. */
export interface DevProxyOptions {
  /** Told about every `POST /sql` once answered. */
  onRequest?: (event: SqlRequestEvent) => void;
}

/** Both transports as handlers, for an HTTP server of one's own. */
export interface DevProxy {
  /** Serves `POST /sql` (and its CORS preflight); 404 with a hint for anything else. */
  handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** Serves the WebSocket at `/v1?address=HOST:PORT`: the `upgrade` event's listener. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Live counters. */
  readonly stats: Readonly<DevProxyStats>;
  /** Ends every tunnel and pool. */
  close(): Promise<void>;
}

/** A listening proxy. */
export interface RunningDevProxy {
  /** The port it listens on. */
  readonly port: number;
  /** Live counters. */
  readonly stats: Readonly<DevProxyStats>;
  /** Stops listening, ends every tunnel and pool. */
  close(): Promise<void>;
}

/**
 * Creates the proxy's handlers.
 *
 * @param options The request log hook.
 * @returns The handlers, the counters and `close()`.
 */
export function createDevProxy(options: DevProxyOptions = {}): DevProxy {
  const stats: DevProxyStats = { http: { requests: 0, statements: 0 }, ws: { connections: 0 } };
  const sql: SqlEndpoint = createSqlEndpoint({ counters: stats.http, onRequest: options.onRequest });
  const ws: WsProxy = createWsProxy(stats.ws);

  function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
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
  }

  return {
    handleRequest,
    handleUpgrade: ws.handleUpgrade,
    stats,
    close: async (): Promise<void> => {
      await ws.close();
      await sql.close();
    },
  };
}

/**
 * Starts the proxy on an HTTP server of its own.
 *
 * @param options Where to listen and the request log hook.
 * @returns Once listening.
 * @throws The `listen` error, e.g. `EADDRINUSE`.
 */
export async function startDevProxy(
  options: DevProxyOptions & { port: number; host: string },
): Promise<RunningDevProxy> {
  const proxy: DevProxy = createDevProxy(options);
  const server: http.Server = http.createServer(proxy.handleRequest);
  server.on("upgrade", proxy.handleUpgrade);
  const port: number = await listen(server, options.port, options.host);
  return {
    port,
    stats: proxy.stats,
    close: async (): Promise<void> => {
      await proxy.close();
      await stopListening(server);
    },
  };
}

/**
 * Listens and resolves with the port.
 *
 * @param server A server not yet listening.
 * @param port The port; 0 picks a free one.
 * @param host The address; loopback unless you mean to share your database.
 * @returns The port it listens on.
 */
export async function listen(server: http.Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve: () => void, reject: (e: Error) => void): void => {
    server.once("error", reject);
    server.listen(port, host, (): void => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/**
 * Stops a server, keep-alive connections included.
 *
 * @param server A listening server.
 */
export async function stopListening(server: http.Server): Promise<void> {
  // Keep-alive sockets from fetch would otherwise hold server.close() open.
  server.closeAllConnections();
  await new Promise<void>((resolve: () => void): void => void server.close((): void => resolve()));
}
