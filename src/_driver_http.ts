/**
 * The driver for Neon's HTTP transport: one `fetch` per statement, through a `neon()` query
 * function the caller made or one made here from a connection string.
 *
 * @module
 */

import { neon, neonConfig } from "@neondatabase/serverless";
import type { Driver, NeonSql, Row } from "./client.ts";
import { abortReason, isBounded, settle } from "./_deadline.ts";

/**
 * Hosts whose HTTP endpoint Neon's driver derives correctly (`api.<rest of host>`).
 */
const NEON_HOST_SUFFIXES = [".neon.tech", ".neon.build", ".vercel-storage.com"];

/**
 * A driver over a query function made with `neon()`.
 *
 * @param sql The query function.
 * @param routed Whether its host was routed to a `fetchEndpoint` here, to keep it routed.
 * @returns The driver.
 */
export function httpDriver(sql: NeonSql, routed = false): Driver {
  if (typeof sql.query !== "function") {
    throw new TypeError("Cannot create a session store: sql has no query() method; pass the function neon() returns");
  }
  return {
    transport: "neon-http",
    run(text, params, options) {
      const signal = options.signal;
      if (signal?.aborted) return Promise.reject(abortReason(signal));
      // Application code may have replaced the global endpoint since: this host stays routed.
      if (routed) ensureRouter();
      // The controller only stops the fetch once the statement is abandoned; settle() decides when.
      const controller = isBounded(options.timeoutMs) || signal ? new AbortController() : undefined;
      // Neon's query object runs on every then(): adopt it once into a plain promise.
      const query = Promise.resolve(
        sql.query(text, params, {
          arrayMode: false,
          fullResults: false,
          ...(controller ? { fetchOptions: { signal: controller.signal } } : {}),
        }) as Promise<Row[]>,
      );
      return settle(query, options, controller && ((reason) => controller.abort(reason)));
    },
  };
}

/**
 * A driver for a connection string, checked so that the password never goes to an endpoint
 * derived from a host that is not Neon's.
 *
 * @param connectionString A `postgres://` URL.
 * @param fetchEndpoint The `/sql` endpoint for that host, when it is not Neon's.
 * @returns The driver.
 * @throws {TypeError} For a URL that is not `postgres://`, a bad endpoint, or a host that is not
 *   Neon's without an endpoint.
 */
export function connectionStringDriver(connectionString: string, fetchEndpoint: string | undefined): Driver {
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
  return httpDriver(neon(connectionString), fetchEndpoint !== undefined);
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
