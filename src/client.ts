/**
 * The database clients pgsession accepts, each behind one small driver: run one statement within
 * a time bound.
 *
 * @module
 */

import { neon, neonConfig } from "@neondatabase/serverless";

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
    fetchEndpoint?: string;
    sql?: never;
    client?: never;
    prepare?: never;
  }
  | { sql: NeonSql; connectionString?: never; fetchEndpoint?: never; client?: never; prepare?: never }
  | {
    client: QueryClient;
    connectionString?: never;
    fetchEndpoint?: never;
    sql?: never;
    /**
     * Send each statement as a named prepared statement (node-postgres'
     * `query({ name, text, values })`), so PostgreSQL plans it once per connection instead of on
     * every call. On by default for clients that support it (`pg` and Neon's `Pool`/`Client`,
     * recognised by their `connect()` method); never for PGlite. Turn it off behind PgBouncer in
     * transaction mode before 1.21, which cannot route prepared statements.
     * @default {true} for `pg` and Neon `Pool`/`Client`, `false` otherwise
     */
    prepare?: boolean;
  };

/** Options of one statement. */
export interface RunOptions {
  /** Milliseconds the statement may take; `0` or `Infinity` for no bound. */
  timeoutMs: number;
  /** Abandons the statement when aborted. */
  signal?: AbortSignal;
}

/** Runs one statement and resolves to its rows; rejects with {@linkcode TimeoutReached} when the bound passes. */
export interface Driver {
  /** The transport, for messages. */
  readonly transport: "neon-http" | "pg" | "query";
  /** Runs one statement. */
  run(text: string, params: unknown[], options: RunOptions): Promise<Row[]>;
}

/** The rejection of a statement that outlived its time bound. */
export class TimeoutReached extends Error {
  /** @param ms The bound that passed. */
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = "TimeoutReached";
  }
}

/** Where drivers report what they recovered from. */
export interface DriverLogger {
  /** Called with a message and details. */
  warn(message: string, details?: Record<string, unknown>): void;
}

/**
 * Hosts whose HTTP endpoint Neon's driver derives correctly (`api.<rest of host>`).
 */
const NEON_HOST_SUFFIXES = [".neon.tech", ".neon.build", ".vercel-storage.com"];

/**
 * Turns a {@linkcode Connection} into a driver. Nothing connects until the first statement.
 *
 * @throws {TypeError} When not exactly one of `connectionString`, `sql` or `client` is given, or
 *   a connection string names a host that is not Neon's without a `fetchEndpoint`.
 */
export function toDriver(connection: Connection, logger: DriverLogger): Driver {
  const given = (["connectionString", "sql", "client"] as const).filter((k) => connection[k] !== undefined);
  if (given.length !== 1) {
    throw new TypeError(
      `Cannot create a session store: give exactly one of connectionString, sql or client (got ${
        given.length ? given.join(", ") : "none"
      })`,
    );
  }
  if (connection.client) return clientDriver(connection.client, connection.prepare, logger);
  if (connection.sql) {
    if (typeof connection.sql.query !== "function") {
      throw new TypeError("Cannot create a session store: sql has no query() method; pass the function neon() returns");
    }
    return httpDriver(connection.sql);
  }
  return httpDriver(
    neonFor(connection.connectionString!, connection.fetchEndpoint),
    connection.fetchEndpoint !== undefined,
  );
}

function neonFor(connectionString: string, fetchEndpoint: string | undefined): NeonSql {
  if (typeof connectionString !== "string" || !connectionString) {
    throw new TypeError("Cannot create a session store: connectionString must be a non-empty string");
  }
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    throw new TypeError("Cannot create a session store: connectionString is not a postgres:// URL");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new TypeError(
      `Cannot create a session store: connectionString has protocol ${url.protocol}, expected postgres:`,
    );
  }
  const host = url.hostname.toLowerCase();
  if (fetchEndpoint !== undefined) {
    let endpoint: URL;
    try {
      endpoint = new URL(fetchEndpoint);
    } catch {
      throw new TypeError(`Cannot use fetchEndpoint ${JSON.stringify(fetchEndpoint)}: expected an http(s) URL`);
    }
    if (endpoint.protocol !== "http:" && endpoint.protocol !== "https:") {
      throw new TypeError(`Cannot use fetchEndpoint ${JSON.stringify(fetchEndpoint)}: expected an http(s) URL`);
    }
    routeHost(url, endpoint.href);
  } else if (!NEON_HOST_SUFFIXES.some((suffix) => host.endsWith(suffix))) {
    throw new TypeError(
      `Cannot create a session store: connectionString names ${host}, which is not a Neon host, and Neon's HTTP ` +
        `transport would send the connection string, password included, to an endpoint derived from it. Pass ` +
        `client: a pg.Pool or Neon Pool for this database, or fetchEndpoint: the URL of a Neon-compatible /sql ` +
        `endpoint (for local development, npx pgsession dev-proxy)`,
    );
  }
  return neon(connectionString);
}

type EndpointFn = (host: string, port: number | string, options?: { jwtAuth?: boolean }) => string;

// Neon's driver reads its HTTP endpoint only from the global neonConfig. Connections that name
// an endpoint are routed by host through one function installed there; every other host keeps
// whatever endpoint was configured before.
const routes = new Map<string, string>();
let previous: string | EndpointFn | undefined;
const router: EndpointFn = (host, port, options) => {
  const routed = routes.get(`${host.toLowerCase()}:${port}`);
  if (routed) return routed;
  return typeof previous === "function" ? previous(host, port, options) : previous!;
};

function routeHost(url: URL, endpoint: string): void {
  const hostname = url.hostname.toLowerCase();
  routes.set(`${hostname}:${url.port}`, endpoint);
  // The driver parses the port the same way; an explicit default port may come back as "".
  if (url.port === "5432") routes.set(`${hostname}:`, endpoint);
  ensureRouter();
}

function ensureRouter(): void {
  const current = neonConfig.fetchEndpoint as string | EndpointFn;
  if (current !== router) {
    previous = current;
    neonConfig.fetchEndpoint = router;
  }
}

function httpDriver(sql: NeonSql, routed = false): Driver {
  return {
    transport: "neon-http",
    run(text, params, options) {
      // Application code may have replaced the global endpoint since: this host stays routed.
      if (routed) ensureRouter();
      const { signal, cleanup, expired } = deadline(options);
      // Neon's query object runs on every then(): adopt it once into a plain promise.
      const query = Promise.resolve(
        sql.query(text, params, {
          arrayMode: false,
          fullResults: false,
          ...(signal ? { fetchOptions: { signal } } : {}),
        }) as Promise<Row[]>,
      );
      return race(query, options, expired, cleanup);
    },
  };
}

function clientDriver(client: QueryClient, prepare: boolean | undefined, logger: DriverLogger): Driver {
  if (!client || typeof client.query !== "function") {
    throw new TypeError("Cannot create a session store: client has no query() method");
  }
  const pgLike = typeof (client as { connect?: unknown }).connect === "function" &&
    typeof (client as { exec?: unknown }).exec !== "function";
  guardErrors(client, logger);
  if (!pgLike) {
    if (prepare) {
      throw new TypeError("Cannot use prepare: true: this client has no node-postgres query({ name, text }) form");
    }
    return {
      transport: "query",
      run: (text, params, options) => race(client.query(text, params).then((r) => r.rows), options),
    };
  }
  const usePrepared = prepare ?? true;
  // node-postgres' config form; our QueryClient type names only the (text, params) form. Its
  // query_timeout makes a pg.Pool discard the connection that timed out, so the pool stays usable.
  const query = client.query as unknown as (
    config: { name?: string; text: string; values: unknown[]; query_timeout?: number },
  ) => Promise<{ rows: Row[] }>;
  return {
    transport: "pg",
    run(text, params, options) {
      const bounded = options.timeoutMs > 0 && Number.isFinite(options.timeoutMs);
      const config = {
        ...(usePrepared ? { name: statementName(text) } : {}),
        text,
        values: params,
        ...(bounded ? { query_timeout: Math.ceil(options.timeoutMs) } : {}),
      };
      const rows = query.call(client, config).then(
        (r) => r.rows,
        (error: unknown) => {
          // node-postgres' query_timeout; the pool discards that connection.
          throw bounded && (error as Error)?.message === "Query read timeout"
            ? new TimeoutReached(options.timeoutMs)
            : error;
        },
      );
      // Our own bound too: query_timeout starts only once a connection is checked out, and
      // connecting through a stalled network has no bound of its own.
      return race(rows, options);
    },
  };
}

/**
 * A pool or client that emits `error` with no listener crashes a Node process when an idle
 * connection dies (the database restarts, a proxy drops it). Attach one that logs, unless the
 * application already listens.
 */
function guardErrors(client: QueryClient, logger: DriverLogger): void {
  const emitter = client as { on?: unknown; listenerCount?: unknown };
  if (typeof emitter.on !== "function" || typeof emitter.listenerCount !== "function") return;
  const events = client as unknown as {
    on(event: string, fn: (error: Error) => void): void;
    listenerCount(event: string): number;
  };
  if (events.listenerCount("error") > 0) return;
  events.on("error", (error: Error) => {
    logger.warn("Database connection failed while idle; the pool replaces it", {
      reason: error?.message ?? String(error),
    });
  });
}

/** An abort signal for the statement's bound and the caller's signal, when the runtime has them. */
function deadline(options: RunOptions): { signal?: AbortSignal; cleanup: () => void; expired: () => boolean } {
  const bounded = options.timeoutMs > 0 && Number.isFinite(options.timeoutMs);
  if (!bounded && !options.signal) return { cleanup: () => {}, expired: () => false };
  const controller = new AbortController();
  let timedOut = false;
  const timer = bounded
    ? setTimeout(() => {
      timedOut = true;
      controller.abort(new TimeoutReached(options.timeoutMs));
    }, options.timeoutMs)
    : undefined;
  const onAbort = () => controller.abort(options.signal!.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  return {
    signal: controller.signal,
    cleanup: () => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    },
    expired: () => timedOut,
  };
}

/**
 * Settles with the statement, or rejects with {@linkcode TimeoutReached} once the bound passes
 * or with the signal's reason once it aborts, whichever comes first.
 */
function race<T>(work: Promise<T>, options: RunOptions, expired?: () => boolean, cleanup?: () => void): Promise<T> {
  const bounded = options.timeoutMs > 0 && Number.isFinite(options.timeoutMs);
  if (!bounded && !options.signal) return cleanup ? work.finally(cleanup) : work;
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = () => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      cleanup?.();
    };
    const onAbort = () => {
      done();
      reject(abortReason(options.signal!));
    };
    if (bounded) {
      timer = setTimeout(() => {
        done();
        reject(new TimeoutReached(options.timeoutMs));
      }, options.timeoutMs);
    }
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        done();
        resolve(value);
      },
      (error) => {
        done();
        reject(expired?.() ? new TimeoutReached(options.timeoutMs) : error);
      },
    );
    // A statement abandoned after its bound may still fail later; that is not unhandled.
    work.catch(() => {});
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted", "AbortError");
}

const names = new Map<string, string>();

/** A stable name per statement text (FNV-1a), so equal texts share one prepared statement. */
function statementName(text: string): string {
  let name = names.get(text);
  if (!name) {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    name = `pgsession_${(h >>> 0).toString(36)}_${text.length}`;
    if (names.size > 256) names.clear();
    names.set(text, name);
  }
  return name;
}
