/**
 * The driver for any client with `query(text, params)` resolving to `{ rows }` and no named
 * statements (PGlite, test doubles).
 *
 * @module
 */

import type { Driver, QueryClient } from "./client.ts";
import { abortReason, settle } from "./_deadline.ts";

/**
 * A driver over a plain `query(text, params)`.
 *
 * @param client The client.
 * @returns The driver.
 */
export function queryDriver(client: QueryClient): Driver {
  return {
    transport: "query",
    run(text, params, options) {
      if (options.signal?.aborted) return Promise.reject(abortReason(options.signal));
      return settle(client.query(text, params).then((r) => r.rows), options);
    },
  };
}
