/**
 * The driver for clients with node-postgres' `query({ name, text, values })` form (`pg` and Neon's
 * `Pool`/`Client`): named prepared statements where the connection keeps them, and pg's own
 * `query_timeout` so a pool discards a connection that stopped answering.
 *
 * @module
 */

import type { Driver, QueryClient, Row } from "./client.ts";
import { abortReason, isBounded, settle, TimeoutReached } from "./_deadline.ts";
import type { Logger } from "./errors.ts";

/** node-postgres' config form; `QueryClient` names only the `(text, params)` form. */
type ConfigQuery = (
  config: { name?: string; text: string; values: unknown[]; query_timeout?: number },
) => Promise<{ rows: Row[] }>;

// Clients on which a named statement met a server connection that did not know it (26000) or
// already had it (42P05): a transaction pooler hands each transaction another server connection.
// Keyed by the client object, so every store sharing a pool learns it once.
const poolerBehind = new WeakSet<object>();

/**
 * A driver over a `pg` or Neon `Pool`/`Client`.
 *
 * @param client The pool or client.
 * @param prepare `true`: always named statements; `false`: never; `undefined`: named until a
 *   pooler shows it cannot route them, then unnamed for good on this client.
 * @param logger Told once per client when named statements are given up.
 * @returns The driver.
 */
export function pgDriver(client: QueryClient, prepare: boolean | undefined, logger: Logger): Driver {
  const query = client.query as unknown as ConfigQuery;
  const send = (text: string, values: unknown[], name: string | undefined, timeoutMs: number): Promise<Row[]> => {
    const bounded = isBounded(timeoutMs);
    // query_timeout makes a pg.Pool discard the connection that timed out, so the pool stays usable.
    const config = {
      ...(name ? { name } : {}),
      text,
      values,
      ...(bounded ? { query_timeout: Math.ceil(timeoutMs) } : {}),
    };
    return query.call(client, config).then(
      (r) => r.rows,
      (error: unknown) => {
        throw bounded && (error as Error)?.message === "Query read timeout" ? new TimeoutReached(timeoutMs) : error;
      },
    );
  };
  return {
    transport: "pg",
    run(text, params, options) {
      const signal = options.signal;
      if (signal?.aborted) return Promise.reject(abortReason(signal));
      const named = prepare === true || (prepare === undefined && !poolerBehind.has(client));
      let rows = send(text, params, named ? statementName(text) : undefined, options.timeoutMs);
      if (named && prepare === undefined) {
        const start = performance.now();
        rows = rows.catch((error: unknown) => {
          if (!isPoolerMiss(error)) throw error;
          if (!poolerBehind.has(client)) {
            poolerBehind.add(client);
            logger.warn(
              "Prepared statements do not reach the same server connection (a transaction pooler?); this client " +
                "now sends unnamed statements. Pass prepare: false to skip the first attempts",
              { reason: (error as Error).message },
            );
          }
          // The named statement never ran: its Parse or Bind failed, so the server skipped to Sync.
          const left = isBounded(options.timeoutMs) ? Math.max(1, options.timeoutMs - (performance.now() - start)) : 0;
          return send(text, params, undefined, left);
        });
      }
      // Our own bound too: query_timeout starts only once a connection is checked out, and
      // connecting through a stalled network has no bound of its own.
      return settle(rows, options);
    },
  };
}

/** `prepared statement … does not exist` (26000) or `… already exists` (42P05). */
function isPoolerMiss(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "26000" || code === "42P05";
}

const names = new Map<string, string>();

/**
 * A name per statement text, so equal texts share one prepared statement. Behind a pooler a
 * server connection may hold names prepared by other processes: a 53-bit hash plus the length
 * keeps two different texts from meeting under one name (among 10,000 texts, a chance under 1 in 10^8).
 */
function statementName(text: string): string {
  let name = names.get(text);
  if (!name) {
    // cyrb53: two multiplicative lanes mixed at the end.
    let h1 = 0xdeadbeef;
    let h2 = 0x41c6ce57;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    const hash = 4294967296 * (2097151 & h2) + (h1 >>> 0);
    name = `pgsession_${hash.toString(36)}_${text.length}`;
    if (names.size > 256) names.clear();
    names.set(text, name);
  }
  return name;
}

/**
 * A pool or client that emits `error` with no listener crashes a Node process when an idle
 * connection dies (the database restarts, a proxy drops it). Attach one that logs, unless the
 * application already listens.
 *
 * @param client The pool or client.
 * @param logger Where the failure is reported.
 */
export function guardErrors(client: QueryClient, logger: Logger): void {
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
