/**
 * The CLI's database connection: node-postgres over TCP, so it reaches any PostgreSQL, Neon
 * included. `pg` is an optional peer dependency of pgsession: the library itself never needs it.
 *
 * @module
 */

import type { Client } from "pg";
import { CliError, EXIT, explain } from "./_fail.ts";

/** An open connection and where it goes, for messages. */
export interface Connected {
  client: Client;
  /** `host:port`, never the password. */
  where: string;
}

const CONNECT_TIMEOUT_MS = 10_000;

/** `host:port` of a URL for messages; the default port when none is given. */
export function whereOf(url: string): string {
  const { hostname, port, searchParams } = new URL(url);
  return `${hostname || searchParams.get("host") || "localhost"}:${port || "5432"}`;
}

/**
 * Connects to the database.
 *
 * @param url A checked `postgres://` URL.
 * @throws {CliError} When `pg` is not installed or the server cannot be reached.
 */
export async function connect(url: string): Promise<Connected> {
  let pg: typeof import("pg").default;
  try {
    pg = (await import("pg")).default;
  } catch (error) {
    throw new CliError(
      "Cannot connect: the pgsession command needs the pg package (an optional peer dependency); install it with `npm install pg`",
      EXIT.FAILED,
      { cause: error },
    );
  }
  const where = whereOf(url);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: "pgsession" });
  // An idle connection dropped by the server must not crash the process with an unhandled event.
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw explain(error, `connect to ${where}`, where, "");
  }
  return { client, where };
}
