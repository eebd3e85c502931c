/**
 * `pgsession dev-proxy`: Neon's HTTP `/sql` endpoint and WebSocket proxy in front of a local
 * PostgreSQL, so code written for Neon's serverless driver (Workers, Vercel Edge, Deno) runs
 * unchanged against the database on a developer's machine. A development tool only.
 *
 * @module
 */

import { isLoopbackHost } from "./dev_proxy/loopback.ts";
import type { SqlRequestEvent } from "./dev_proxy/sql_endpoint.ts";
import { connect } from "./_connect.ts";
import { CliError, EXIT, redact } from "./_fail.ts";
import { importPeer } from "./_peer.ts";
import type { Output } from "./_output.ts";

/** What `pgsession dev-proxy` takes. */
export interface DevProxyCommand {
  /** The local database the app will use (checked at start). */
  url: string;
  port: number;
  host: string;
  connectTimeoutMs: number;
  /** Aborted on Ctrl-C or SIGTERM: the proxy stops. */
  signal: AbortSignal;
}

/**
 * Checks the database, serves until the signal aborts, and logs one line per HTTP request.
 *
 * @param command The database, where to listen, and the stop signal.
 * @param out Where the banner and the request log go.
 * @returns 0 once stopped.
 * @throws {CliError} When the database cannot be reached or the port is taken.
 */
export async function runDevProxy(command: DevProxyCommand, out: Output): Promise<number> {
  // Fail at start, not on the app's first request, when the database is not there.
  const { client, where } = await connect(command.url, command.connectTimeoutMs);
  await client.end().catch(() => {});
  // Imported here: the other commands need neither the server nor ws. ws first, for its message.
  await importPeer("ws", "start dev-proxy", () => import("ws"));
  const { startDevProxy } = await import("./dev_proxy/server.ts");
  let proxy;
  try {
    proxy = await startDevProxy({
      port: command.port,
      host: command.host,
      onRequest: (event) => out.write(logLine(event)),
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const reason = code === "EADDRINUSE"
      ? "the port is in use; choose another with --port"
      : code === "EADDRNOTAVAIL"
      ? "no such address on this machine"
      : (error as Error).message;
    throw new CliError(`Cannot listen on ${command.host}:${command.port}: ${reason}`, EXIT.FAILED, { cause: error });
  }
  const hostInUrl = command.host.includes(":") ? `[${command.host}]` : command.host;
  const base = `http://${hostInUrl}:${proxy.port}`;
  const loopback = isLoopbackHost(command.host);
  out.write(
    `pgsession dev-proxy: Neon's HTTP and WebSocket endpoints for the PostgreSQL at ${where}\n` +
      `Listening on ${base} (${
        loopback
          ? "loopback only: other machines cannot connect"
          : "NOT loopback: anyone who reaches this address can run SQL on your local databases"
      })\n` +
      "A development tool: never point production code at it. It relays only to databases on this machine.\n\n" +
      "In the app's local environment (.dev.vars, .env.local, or the shell):\n" +
      `  DATABASE_URL=${redact(command.url)}\n` +
      `  DATABASE_HTTP_ENDPOINT=${base}/sql\n` +
      "and in its code: { connectionString: env.DATABASE_URL, fetchEndpoint: env.DATABASE_HTTP_ENDPOINT }\n" +
      `Neon's Pool/Client: neonConfig.wsProxy = (host, port) => \`${hostInUrl}:${proxy.port}/v1?address=\${host}:\${port}\`, ` +
      "useSecureWebSocket = false, pipelineConnect = false\n" +
      "Ctrl-C stops it.\n",
  );
  await new Promise<void>((resolve) => {
    if (command.signal.aborted) return resolve();
    command.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  await proxy.close();
  out.write(
    `Stopped after ${proxy.stats.http.requests} HTTP requests (${proxy.stats.http.statements} statements) and ${proxy.stats.ws.connections} WebSocket connections\n`,
  );
  return EXIT.OK;
}

/** `POST /sql 200 2 statements (transaction) 4 ms 127.0.0.1:5432/app`, and the error if any. */
function logLine(event: SqlRequestEvent): string {
  const statements = `${event.statements} statement${event.statements === 1 ? "" : "s"}${
    event.batch ? " (transaction)" : ""
  }`;
  const error = event.error ? `: ${event.error.split("\n")[0]}` : "";
  return `POST /sql ${event.status} ${statements} ${Math.round(event.ms)} ms ${event.database}${error}\n`;
}
