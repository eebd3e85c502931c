// One system of the session benchmark, serving /read and /modify (and the other scenario routes)
// on 127.0.0.1 in its own process, so the load generator and each server get their own event
// loop. Prints `READY <port>`; exits when stdin closes.
//
//   node --import tsx bench/_server.ts <pgsession-pg | pgsession-http | express | limit-hono | limit-node>
//
// Fetch handlers (pgsession, limit-hono) are served by @hono/node-server, the adapter Node users of
// fetch handlers use; express by express; limit-node is a raw node:http handler.
// Env: DATABASE_URL, BENCH_SCHEMA, SUPPORT_PORT (pgsession-http), BENCH_PREPARE=1 (named prepared
// statements: the limit's, or pgsession's `prepare: true`), BENCH_NO_SECRETS=1 (profiling),
// BENCH_PGSESSION=<dir> (load pgsession from another checkout: its dist/mod.js, else its mod.ts),
// BENCH_APP=<name> (the connections' application_name, by which the benchmark finds this system's
// PostgreSQL backends to read their CPU time).
//
// Pools close idle connections after 1 s, so only the system under load holds connections: 10 per
// server kept open would pass PostgreSQL's default max_connections of 100 with 8 to 11 servers
// ("sorry, too many clients already", seen with --variants and short runs under pg's 10-s
// default). Every run therefore starts by connecting, as 3-s runs about 25 s apart did anyway.
import { serve } from "@hono/node-server";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import { configureNeon } from "../tests/support/harness.ts";
import {
  expressApp,
  type FetchHandler,
  limitFetchHandler,
  limitHandler,
  pgsessionHandler,
  POOL_SIZE,
} from "./_apps.ts";

const system = process.argv[2];
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = process.env.BENCH_SCHEMA!;
const prepare = process.env.BENCH_PREPARE === "1";
const app = process.env.BENCH_APP ?? `bench_${system}`;
const poolOptions: pg.PoolConfig = {
  connectionString: url,
  max: POOL_SIZE,
  idleTimeoutMillis: 1000,
  application_name: app,
};

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

/**
 * The JavaScript users run: the checkout's `dist/mod.js` (`npm run build`, done by `npm run
 * bench`), or its TypeScript sources when it has no build.
 */
function builtOrSource(dir: string): string {
  const built = path.resolve(dir, "dist/mod.js");
  return existsSync(built) ? built : path.resolve(dir, "mod.ts");
}

/** @hono/node-server's `serve`, as its README shows it, on a free port. */
function serveFetch(fetch: FetchHandler): Promise<{ port: number; server: http.Server }> {
  return new Promise((resolve) => {
    const server = serve(
      { fetch, port: 0, hostname: "127.0.0.1" },
      (info) => resolve({ port: info.port, server }),
    ) as http.Server;
  });
}

let port: number;
let server: http.Server;
let pool: pg.Pool | undefined;
if (system === "pgsession-pg" || system === "pgsession-http") {
  const lib: typeof import("../mod.ts") = await import(
    pathToFileURL(builtOrSource(process.env.BENCH_PGSESSION ?? fileURLToPath(new URL("..", import.meta.url))))
      .href
  );
  let store: InstanceType<typeof lib.PostgresStore>;
  if (system === "pgsession-pg") {
    pool = new pg.Pool(poolOptions);
    // Default options unless asked: what most users run.
    store = new lib.PostgresStore({ client: pool, table: `${schema}.session`, ...(prepare ? { prepare: true } : {}) });
  } else {
    // The pool of POOL_SIZE connections lives in the local /sql endpoint, as it does at Neon.
    configureNeon(Number(process.env.SUPPORT_PORT));
    // fetchEndpoint names the local endpoint (a non-Neon host needs it); older builds of the
    // --baseline ignore it and use the global neonConfig set above.
    // The endpoint keeps one pool per connection string; application_name names its backends.
    const named = new URL(url);
    named.searchParams.set("application_name", app);
    store = new lib.PostgresStore({
      connectionString: named.href,
      fetchEndpoint: `http://127.0.0.1:${process.env.SUPPORT_PORT}/sql`,
      table: `${schema}.session`,
    });
  }
  ({ port, server } = await serveFetch(pgsessionHandler(store, process.env.BENCH_NO_SECRETS !== "1", lib.withSession)));
} else if (system === "limit-hono") {
  pool = new pg.Pool(poolOptions);
  ({ port, server } = await serveFetch(limitFetchHandler(pool, `${schema}.limit_session`, prepare)));
} else if (system === "express" || system === "limit-node") {
  pool = new pg.Pool(poolOptions);
  server = http.createServer(
    system === "express" ? expressApp(pool, schema) : limitHandler(pool, `${schema}.limit_session`, prepare),
  );
  port = await listen(server);
} else {
  throw new Error(`unknown system ${system}`);
}

let stopping = false;
const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  server.closeAllConnections();
  new Promise((resolve) => server.close(resolve)).then(() => pool?.end()).finally(() => process.exit(0));
};
process.stdin.on("end", shutdown);
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.stdin.resume();
process.stdout.write(`READY ${port}\n`);
