/**
 * The database clients pgsession accepts, reduced to one query function.
 *
 * @module
 */

import { neon } from "@neondatabase/serverless";

/** A result row keyed by column name. */
export type Row = Record<string, unknown>;

/**
 * Anything with node-postgres' `query(text, params)` returning `{ rows }`: a Neon `Pool` or
 * `Client`, a `pg.Pool` or `pg.Client`, PGlite.
 */
export interface QueryClient {
  /** Runs one parameterized statement. */
  query(text: string, params?: unknown[]): Promise<{ rows: Row[] }>;
}

/**
 * A query function made by Neon's `neon()`, for its HTTP transport. Only its `query()` method is
 * used, so any `arrayMode`/`fullResults` it was made with does not matter.
 */
export interface NeonSql {
  /** Runs one parameterized statement over HTTP. */
  query(text: string, params?: unknown[], options?: { arrayMode?: boolean; fullResults?: boolean }): Promise<unknown>;
}

/**
 * Where the store sends its SQL: exactly one of these.
 *
 * - `connectionString`: a Postgres URL used with Neon's HTTP transport (`neon()`).
 * - `sql`: a query function you made with `neon()`.
 * - `client`: a pool or client with node-postgres' `query()`.
 */
export type Connection =
  | { connectionString: string; sql?: never; client?: never; prepare?: never }
  | { sql: NeonSql; connectionString?: never; client?: never; prepare?: never }
  | {
    client: QueryClient;
    connectionString?: never;
    sql?: never;
    /**
     * Send each statement as a named prepared statement (node-postgres'
     * `query({ name, text, values })`), so PostgreSQL plans it once per connection instead of on
     * every call: about twice the statements per second for the session read. For `pg` and Neon's
     * `Pool`/`Client`; not for PGlite, nor behind PgBouncer in transaction mode before 1.21.
     * @default {false}
     */
    prepare?: boolean;
  };

/** Runs one statement and resolves to its rows. */
export type QueryFn = (text: string, params: unknown[]) => Promise<Row[]>;

/**
 * Turns a {@linkcode Connection} into a query function. Nothing connects until the first query.
 *
 * @throws {TypeError} When not exactly one of `connectionString`, `sql` or `client` is given.
 */
export function toQueryFn(connection: Connection): QueryFn {
  const given = (["connectionString", "sql", "client"] as const).filter((k) => connection[k] !== undefined);
  if (given.length !== 1) {
    throw new TypeError(`Cannot create a session store: give exactly one of connectionString, sql or client (got ${given.length ? given.join(", ") : "none"})`);
  }
  if (connection.client) {
    const client = connection.client;
    if (typeof client.query !== "function") throw new TypeError("Cannot create a session store: client has no query() method");
    if (!connection.prepare) return async (text, params) => (await client.query(text, params)).rows;
    // node-postgres' config form; our QueryClient type names only the (text, params) form.
    const prepared = client.query as unknown as (config: { name: string; text: string; values: unknown[] }) => Promise<{ rows: Row[] }>;
    return async (text, params) => (await prepared.call(client, { name: statementName(text), text, values: params })).rows;
  }
  let sql = connection.sql;
  if (!sql) {
    if (typeof connection.connectionString !== "string" || !connection.connectionString) {
      throw new TypeError("Cannot create a session store: connectionString must be a non-empty string");
    }
    sql = neon(connection.connectionString);
  }
  if (typeof sql.query !== "function") throw new TypeError("Cannot create a session store: sql has no query() method; pass the function neon() returns");
  const neonSql = sql;
  return async (text, params) => (await neonSql.query(text, params, { arrayMode: false, fullResults: false })) as Row[];
}

const names = new Map<string, string>();

/** A stable name per statement text (FNV-1a), so equal texts share one prepared statement. */
function statementName(text: string): string {
  let name = names.get(text);
  if (!name) {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    name = `pgsession_${(h >>> 0).toString(36)}_${text.length}`;
    names.set(text, name);
  }
  return name;
}
