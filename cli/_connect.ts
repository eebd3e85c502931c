/**
 * The CLI's database connection: node-postgres over TCP, so it reaches any PostgreSQL, Neon
 * included. `pg` is an optional peer dependency of pgsession: the library itself never needs it.
 *
 * @module
 */

import type { Client } from "pg";
import { CONNECT_TIMEOUT_MS } from "./_args.ts";
import { CliError, EXIT, explain } from "./_fail.ts";
import { importPeer } from "./_peer.ts";

/** An open connection and where it goes, for messages. */
export interface Connected {
  client: Client;
  /** `host:port`, never the password. */
  where: string;
}

/** `host:port` of a URL for messages; the default port when none is given. */
export function whereOf(url: string): string {
  const { hostname, port, searchParams } = new URL(url);
  return `${hostname || searchParams.get("host") || "localhost"}:${port || "5432"}`;
}

/**
 * Connects to the database.
 *
 * @param url A checked `postgres://` URL.
 * @param timeoutMs How long to wait for the server to answer.
 * @throws {CliError} When `pg` is not installed or the server cannot be reached.
 */
export async function connect(url: string, timeoutMs: number = CONNECT_TIMEOUT_MS): Promise<Connected> {
  const pg = await loadPg();
  const where = whereOf(url);
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    application_name: "pgsession",
  });
  // An idle connection dropped by the server must not crash the process with an unhandled event.
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    if (isConnectTimeout(error)) {
      throw new CliError(
        `Cannot connect to ${where}: no answer within ${
          timeoutMs / 1000
        } s; is the server up and the address right? (wait longer with --connect-timeout)`,
        EXIT.FAILED,
        { cause: error },
      );
    }
    throw explain(error, `connect to ${where}`, where, "");
  }
  return { client, where };
}

/**
 * Imports `pg`, the optional peer dependency the commands need.
 *
 * @returns The module's default export.
 * @throws {CliError} With exit code 2 when it is not installed, saying how to install it.
 */
export async function loadPg(): Promise<typeof import("pg").default> {
  return (await importPeer("pg", "connect", () => import("pg"))).default;
}

/** node-postgres' own connect timeout ("timeout expired", "Connection terminated due to connection timeout"). */
function isConnectTimeout(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /timeout expired|connection timeout/i.test(message);
}
