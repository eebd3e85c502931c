/**
 * The database clients pgsession accepts, each behind one small driver: run one statement within
 * a time bound.
 *
 * @module
 */

import { guardErrors, pgDriver } from "./_driver_pg.ts";
import { connectionStringDriver, httpDriver } from "./_driver_http.ts";
import { queryDriver } from "./_driver_query.ts";
import type { Logger } from "./errors.ts";

export { TimeoutReached } from "./_deadline.ts";

/** A result row keyed by column name. */
export type Row = Record<string, unknown>;

/**
 * Anything with node-postgres' `query(text, params)` returning `{ rows }`: a Neon `Pool` or
 * `Client`, a `pg.Pool` or `pg.Client`, PGlite.
 */
export interface QueryClient {
  /** Runs one parameterized statement. */
  query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

/**
 * A query function made by Neon's `neon()`, for its HTTP transport. Only its `query()` method is
 * used, so any `arrayMode`/`fullResults` it was made with does not matter.
 */
export interface NeonSql {
  /** Runs one parameterized statement over HTTP. */
  query(
    text: string,
    params?: unknown[],
    options?: { arrayMode?: boolean; fullResults?: boolean; fetchOptions?: Record<string, unknown> },
  ): Promise<unknown>;
}

/**
 * Where the store sends its SQL: exactly one of these.
 *
 * - `connectionString`: a Neon URL, used with Neon's HTTP transport (`neon()`). Other hosts are
 *   refused unless `fetchEndpoint` names the HTTP endpoint: Neon's driver would otherwise derive
 *   an endpoint from the host and send it the whole connection string, password included.
 * - `sql`: a query function you made with `neon()`.
 * - `client`: a pool or client with node-postgres' `query()`.
 */
export type Connection =
  | {
    connectionString: string;
    /**
     * The URL of a Neon-compatible HTTP `/sql` endpoint for this connection string, such as
     * `npx pgsession dev-proxy` in local development (`http://127.0.0.1:4444/sql`) or a self-hosted
     * proxy. Needed for any host that is not Neon's.
     * @default {undefined} (Neon's endpoint for a Neon host)
     */
    fetchEndpoint?: string | undefined;
    sql?: undefined;
    client?: undefined;
    prepare?: undefined;
  }
  | { sql: NeonSql; connectionString?: undefined; fetchEndpoint?: undefined; client?: undefined; prepare?: undefined }
  | {
    client: QueryClient;
    connectionString?: undefined;
    fetchEndpoint?: undefined;
    sql?: undefined;
    /**
     * Send each statement as a named prepared statement (node-postgres'
     * `query({ name, text, values })`), so PostgreSQL plans it once per connection instead of on
     * every call. Only for clients that support it (`pg` and Neon's `Pool`/`Client`, recognised by
     * their `connect()` method); never for PGlite.
     *
     * - unset: prepared, until a statement meets a server connection that does not know its name
     *   or already has it (`26000`, `42P05`: a transaction pooler such as PgBouncer before 1.21,
     *   or with `max_prepared_statements = 0`, or Supabase's). That statement never ran; it is sent
     *   again unprepared, the logger is told once, and every store on this client object sends
     *   unprepared statements from then on. Works through any pooler.
     * - `true`: always prepared; behind such a pooler statements fail with those errors.
     * - `false`: never prepared (planned on every call); skips the first failed attempts behind a
     *   pooler you know of.
     * @default {undefined} (prepared until a pooler shows it cannot route them)
     */
    prepare?: boolean | undefined;
  };

/** Options of one statement. */
export interface RunOptions {
  /** Milliseconds the statement may take; `0` or `Infinity` for no bound. */
  timeoutMs: number;
  /**
   * Checked before sending: once aborted, nothing is sent. A statement in flight is abandoned
   * when it aborts (one listener per signal, shared by its statements).
   */
  signal?: AbortSignal | undefined;
}

/** Runs one statement and resolves to its rows; rejects with {@linkcode TimeoutReached} when the bound passes. */
export interface Driver {
  /** The transport, for messages. */
  readonly transport: "neon-http" | "pg" | "query";
  /** Runs one statement. */
  run(text: string, params: unknown[], options: RunOptions): Promise<Row[]>;
}

/**
 * Turns a {@linkcode Connection} into a driver. Nothing connects until the first statement.
 *
 * @param connection Where the SQL goes.
 * @param logger Told what the driver recovered from (an idle connection lost, prepared
 *   statements given up behind a pooler).
 * @returns The driver.
 * @throws {TypeError} When not exactly one of `connectionString`, `sql` or `client` is given, or
 *   a connection string names a host that is not Neon's without a `fetchEndpoint`.
 */
export function toDriver(connection: Connection, logger: Logger): Driver {
  const given = (["connectionString", "sql", "client"] as const).filter((k) => connection[k] !== undefined);
  if (given.length !== 1) {
    throw new TypeError(
      `Cannot create a session store: give exactly one of connectionString, sql or client (got ${
        given.length ? given.join(", ") : "none"
      })`,
    );
  }
  if (connection.client) return clientDriver(connection.client, connection.prepare, logger);
  if (connection.sql) return httpDriver(connection.sql);
  return connectionStringDriver(connection.connectionString!, connection.fetchEndpoint);
}

function clientDriver(client: QueryClient, prepare: boolean | undefined, logger: Logger): Driver {
  if (!client || typeof client.query !== "function") {
    throw new TypeError("Cannot create a session store: client has no query() method");
  }
  const pgLike = typeof (client as { connect?: unknown }).connect === "function" &&
    typeof (client as { exec?: unknown }).exec !== "function";
  guardErrors(client, logger);
  if (pgLike) return pgDriver(client, prepare, logger);
  if (prepare) {
    throw new TypeError("Cannot use prepare: true: this client has no node-postgres query({ name, text }) form");
  }
  return queryDriver(client);
}
