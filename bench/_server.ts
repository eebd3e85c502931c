// One system of the session benchmark, serving /read and /modify (and the other scenario routes)
// on 127.0.0.1 in its own process, so the load generator and each server get their own event
// loop. Prints `READY <port>`; exits when stdin closes.
//
//   node --import tsx bench/_server.ts <pgsession-pg | pgsession-http | express | limit>
// Env: DATABASE_URL, BENCH_SCHEMA, SUPPORT_PORT (pgsession-http), BENCH_NO_SECRETS=1 (profiling),
// BENCH_PREPARE=1 (named prepared statements: pgsession's `prepare: true`, and the same for the limit).
import http from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import pg from "pg";
import { PostgresStore } from "../mod.ts";
import { configureNeon } from "../tests/support/harness.ts";
import { expressApp, limitHandler, pgsessionHandler, POOL_SIZE } from "./_apps.ts";

const system = process.argv[2];
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = process.env.BENCH_SCHEMA!;

/**
 * A lean Node adapter for a fetch handler, as @hono/node-server does for small bodies: GET only,
 * the body buffered and written with the headers in one `end()`. (tests/runtimes/node_server.ts
 * streams, which costs a separate write for the headers.)
 */
function nodeListener(handler: (req: Request) => Promise<Response>): http.RequestListener {
  return function listener(req, res): void {
    const headers = new Headers();
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    (async () => {
      const response = await handler(new Request(`http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`, { method: req.method, headers }));
      const body = Buffer.from(await response.arrayBuffer());
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of response.headers) if (name !== "set-cookie") out[name] = value;
      const cookies = response.headers.getSetCookie();
      if (cookies.length > 0) out["set-cookie"] = cookies;
      res.writeHead(response.status, out).end(body);
    })().catch((error) => {
      console.error(error);
      res.writeHead(500).end();
    });
  };
}

let port: number;
let stop: () => Promise<unknown>;
if (system === "pgsession-pg" || system === "pgsession-http") {
  let pool: pg.Pool | undefined;
  let store: PostgresStore;
  if (system === "pgsession-pg") {
    pool = new pg.Pool({ connectionString: url, max: POOL_SIZE });
    store = new PostgresStore({ client: pool, prepare: process.env.BENCH_PREPARE === "1", table: `${schema}.session` });
  } else {
    // The pool of POOL_SIZE connections lives in the local /sql endpoint, as it does at Neon.
    configureNeon(Number(process.env.SUPPORT_PORT));
    store = new PostgresStore({ connectionString: url, table: `${schema}.session` });
  }
  const server = http.createServer(nodeListener(pgsessionHandler(store, process.env.BENCH_NO_SECRETS !== "1")));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  stop = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await pool?.end();
  };
} else if (system === "express" || system === "limit") {
  const pool = new pg.Pool({ connectionString: url, max: POOL_SIZE });
  const server = system === "express"
    ? http.createServer(expressApp(pool, schema))
    : http.createServer(limitHandler(pool, `${schema}.limit_session`, process.env.BENCH_PREPARE === "1"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  stop = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await pool.end();
  };
} else {
  throw new Error(`unknown system ${system}`);
}

let stopping = false;
const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  stop().finally(() => process.exit(0));
};
process.stdin.on("end", shutdown);
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.stdin.resume();
process.stdout.write(`READY ${port}\n`);
