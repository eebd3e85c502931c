// Every way a PostgresStore can reach PostgreSQL, as interchangeable test fixtures, so one shared
// suite (tests/store.test.ts) runs once per transport. Each fixture counts the statements its
// store sends where they leave the process: at the support server for the Neon transports (HTTP
// `/sql` endpoint and WebSocket proxy), in a counting wrapper around `query` for pg and PGlite.
// Every connection runs with the database `TimeZone` set to DB_TIME_ZONE.
import { Client, neon, Pool } from "@neondatabase/serverless";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import {
  type Connection,
  type NeonSql,
  PostgresStore,
  type QueryClient,
  schemaSql,
  type StoreOptions,
} from "../mod.ts";
import { type Row } from "../src/client.ts";
import { adminPool, databaseUrl, DB_TIME_ZONE, withTimeZone } from "./_db.ts";
import { configureNeon, startSupportServer } from "./support/harness.ts";
import { startPgBouncer } from "./support/pgbouncer.ts";

/** What a test may pass to {@linkcode Fixture.store}: any store option but the connection. */
export type FixtureStoreOptions = StoreOptions;

/** A transport set up for one suite, with its own schema and table. */
export interface Fixture {
  /** The schema-qualified table the stores use by default, e.g. `store_pg_1a2b….session`. */
  readonly table: string;
  /** A store on this transport; `table` defaults to {@linkcode Fixture.table}. */
  store(options?: FixtureStoreOptions): PostgresStore;
  /** Statements sent over this transport since the last {@linkcode Fixture.resetCount}. */
  statements(): Promise<number>;
  resetCount(): Promise<void>;
  /** Runs SQL on an admin connection that is not counted (same database, same TimeZone). */
  sql(text: string, params?: unknown[]): Promise<Row[]>;
  /** The `TimeZone` setting as seen through this transport's own connection (counted). */
  sessionTimeZone(): Promise<string>;
  /** A store whose connection is closed or unreachable; `close()` releases what it holds. */
  brokenStore(options?: FixtureStoreOptions): Promise<{ store: PostgresStore; close(): Promise<void> }>;
  /** Drops the schema and closes every pool, client, socket and child process. */
  close(): Promise<void>;
}

/** A way to reach the database. */
export interface Transport {
  readonly name: string;
  /** Needs the PostgreSQL server (PGlite runs in-process and does not). */
  readonly needsServer: boolean;
  setup(schema: string): Promise<Fixture>;
}

// Nothing listens on port 1: connecting fails at once with ECONNREFUSED.
const UNREACHABLE_URL = "postgres://postgres@127.0.0.1:1/test";

/** A `QueryClient` that counts every `query` call before passing it on. */
function counting(target: QueryClient): { client: QueryClient; count(): number; reset(): void } {
  let n = 0;
  return {
    client: {
      query(text: string, params?: unknown[]): Promise<{ rows: Row[] }> {
        n++;
        return target.query(text, params);
      },
    },
    count: (): number => n,
    reset: (): void => {
      n = 0;
    },
  };
}

function firstString(rows: Row[], column: string): string {
  const value = rows[0]?.[column];
  if (typeof value !== "string") throw new Error(`expected a string in column ${column}, got ${String(value)}`);
  return value;
}

const SHOW_TIME_ZONE = "select current_setting('TimeZone') as tz";

/** Admin side shared by the server-backed fixtures: a pg pool, the schema and its table. */
async function serverAdmin(schema: string): Promise<{ sql: Fixture["sql"]; drop(): Promise<void> }> {
  const admin = adminPool();
  try {
    await admin.query(`create schema "${schema}"`);
    await admin.query(schemaSql(`${schema}.session`));
  } catch (error) {
    await admin.end();
    throw error;
  }
  return {
    sql: async (text, params) => (await admin.query(text, params)).rows as Row[],
    drop: async () => {
      try {
        await admin.query(`drop schema if exists "${schema}" cascade`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Neon's HTTP transport via the support server's `/sql` endpoint. */
function neonHttp(
  name: string,
  connect: (url: string, endpoint: string) => { connectionString: string; fetchEndpoint?: string } | { sql: NeonSql },
): Transport {
  return {
    name,
    needsServer: true,
    async setup(schema) {
      const server = await startSupportServer();
      let admin: Awaited<ReturnType<typeof serverAdmin>>;
      try {
        configureNeon(server.port);
        admin = await serverAdmin(schema);
      } catch (error) {
        await server.close();
        throw error;
      }
      const url = withTimeZone(databaseUrl());
      const table = `${schema}.session`;
      return {
        table,
        store: (options = {}) => makeStore({ ...connect(url, `${server.url}/sql`), table, ...options }),
        statements: async () => (await server.stats()).http.statements,
        resetCount: () => server.reset(),
        sql: admin.sql,
        sessionTimeZone: async () => firstString(await neon(url).query(SHOW_TIME_ZONE), "tz"),
        brokenStore: (options = {}) =>
          Promise.resolve({
            store: makeStore({ ...connect(withTimeZone(UNREACHABLE_URL), `${server.url}/sql`), table, ...options }),
            close: () => Promise.resolve(),
          }),
        close: async () => {
          try {
            await admin.drop();
          } finally {
            await server.close();
          }
        },
      };
    },
  };
}

function makeStore(options: Connection & StoreOptions): PostgresStore {
  return new PostgresStore(options);
}

/** Neon's WebSocket transport (`Pool` or one `Client`) via the support server's proxy. */
function neonWs(name: string, kind: "pool" | "client"): Transport {
  async function open(url: string): Promise<QueryClient & { end(): Promise<void> }> {
    if (kind === "pool") {
      const pool = new Pool({ connectionString: url, max: 4 });
      pool.on("error", (): void => {});
      return pool as unknown as QueryClient & { end(): Promise<void> };
    }
    const client = new Client(url);
    client.on("error", (): void => {});
    await client.connect();
    return client as unknown as QueryClient & { end(): Promise<void> };
  }
  return {
    name,
    needsServer: true,
    async setup(schema) {
      const server = await startSupportServer();
      let admin: Awaited<ReturnType<typeof serverAdmin>>;
      let conn: QueryClient & { end(): Promise<void> };
      const url = withTimeZone(databaseUrl());
      try {
        configureNeon(server.port);
        admin = await serverAdmin(schema);
        try {
          conn = await open(url);
        } catch (error) {
          await admin.drop();
          throw error;
        }
      } catch (error) {
        await server.close();
        throw error;
      }
      const table = `${schema}.session`;
      return {
        table,
        store: (options = {}) => makeStore({ client: conn, table, ...options }),
        statements: async () => (await server.stats()).ws.statements,
        resetCount: () => server.reset(),
        sql: admin.sql,
        sessionTimeZone: async () => firstString((await conn.query(SHOW_TIME_ZONE)).rows, "tz"),
        brokenStore: async (options = {}) => {
          // A pool or client the application already closed.
          const closed = await open(url);
          if (kind === "client") await closed.query("select 1");
          await closed.end();
          return { store: makeStore({ client: closed, table, ...options }), close: () => Promise.resolve() };
        },
        close: async () => {
          try {
            await conn.end();
            await admin.drop();
          } finally {
            await server.close();
          }
        },
      };
    },
  };
}

/** node-postgres `pg.Pool` straight to the server (prepared statements, the default), counted at `query`. */
const pgPool: Transport = pgPoolTransport("pg.Pool", undefined);
/** The same with `prepare: false`: unnamed statements, planned on every call. */
const pgPoolUnprepared: Transport = pgPoolTransport("pg.Pool, prepare: false", false);
/**
 * A `pg.Pool` with default options through a PgBouncer of its own in transaction mode (two server
 * connections for the pool's four), which routes no prepared statements.
 */
const pgPoolPgBouncer: Transport = pgPoolTransport("pg.Pool via PgBouncer (transaction mode)", undefined, true);

/** Counts `query` calls on the pool itself, so the store still sees a real `pg.Pool`. */
function countingPool(pool: pg.Pool): { count(): number; reset(): void } {
  let n = 0;
  const original = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]): unknown => {
    n++;
    return original(...args);
  };
  return {
    count: (): number => n,
    reset: (): void => {
      n = 0;
    },
  };
}

function pgPoolTransport(name: string, prepare: boolean | undefined, viaPgBouncer = false): Transport {
  return {
    name,
    needsServer: true,
    async setup(schema) {
      const admin = await serverAdmin(schema);
      let url = withTimeZone(databaseUrl());
      let bouncer: Awaited<ReturnType<typeof startPgBouncer>> | undefined;
      if (viaPgBouncer) {
        try {
          // PgBouncer refuses the startup `options` that carry the time zone; it sets it itself.
          bouncer = await startPgBouncer(databaseUrl(), { timeZone: DB_TIME_ZONE, poolSize: 2 });
        } catch (error) {
          await admin.drop();
          throw error;
        }
        url = bouncer.url;
      }
      const pool = new pg.Pool({ connectionString: url, max: 4 });
      pool.on("error", (): void => {});
      const counter = countingPool(pool);
      const client = pool as unknown as QueryClient;
      const table = `${schema}.session`;
      return {
        table,
        store: (options = {}) => makeStore({ client, prepare, table, ...options }),
        statements: () => Promise.resolve(counter.count()),
        resetCount: () => Promise.resolve(counter.reset()),
        sql: admin.sql,
        sessionTimeZone: async () => firstString((await client.query(SHOW_TIME_ZONE)).rows, "tz"),
        brokenStore: async (options = {}) => {
          const closed = new pg.Pool({ connectionString: url });
          await closed.end();
          return {
            store: makeStore({ client: closed as unknown as QueryClient, prepare, table, ...options }),
            close: () => Promise.resolve(),
          };
        },
        close: async () => {
          try {
            await pool.end();
          } finally {
            try {
              await bouncer?.close();
            } finally {
              await admin.drop();
            }
          }
        },
      };
    },
  };
}

/** PGlite in-process: no server; the admin connection is the same instance, uncounted. */
const pglite: Transport = {
  name: "PGlite",
  needsServer: false,
  async setup(schema) {
    const db = new PGlite();
    try {
      // PGlite is one session: SET lasts for the instance's lifetime.
      await db.exec(`set TimeZone = '${DB_TIME_ZONE}'; create schema "${schema}"; ${schemaSql(`${schema}.session`)}`);
    } catch (error) {
      await db.close();
      throw error;
    }
    const counter = counting(db as unknown as QueryClient);
    const table = `${schema}.session`;
    return {
      table,
      store: (options = {}) => makeStore({ client: counter.client, table, ...options }),
      statements: () => Promise.resolve(counter.count()),
      resetCount: () => Promise.resolve(counter.reset()),
      sql: async (text, params) => (await db.query<Row>(text, params)).rows,
      sessionTimeZone: async () => firstString((await counter.client.query(SHOW_TIME_ZONE)).rows, "tz"),
      brokenStore: async (options = {}) => {
        // A fresh instance runs initdb (seconds); one loaded from a dump of this one starts fast.
        const closed = new PGlite({ loadDataDir: await db.dumpDataDir("none") });
        await closed.close();
        return {
          store: makeStore({ client: closed as unknown as QueryClient, table, ...options }),
          close: () => Promise.resolve(),
        };
      },
      close: () => db.close(),
    };
  },
};

/** Every transport, in the order the shared suite runs them. */
export const transports: readonly Transport[] = [
  neonHttp("Neon HTTP neon() via /sql", (url) => ({ sql: neon(url) })),
  neonHttp(
    "Neon HTTP { connectionString, fetchEndpoint } via /sql",
    (url, endpoint) => ({ connectionString: url, fetchEndpoint: endpoint }),
  ),
  neonWs("Neon Pool via WebSocket proxy", "pool"),
  neonWs("Neon Client via WebSocket proxy", "client"),
  pgPool,
  pgPoolUnprepared,
  pgPoolPgBouncer,
  pglite,
];
