// The three apps the session benchmark compares, with the same routes, so a scenario means the
// same thing for each: pgsession (a fetch handler), express-session + connect-pg-simple (an
// express app), and the bare limit (sending only the statements a session read or modify needs,
// as a node:http handler and as a fetch handler). Used in-process by bench/sessions.ts and in child processes by
// bench/_server.ts.
//
// Routes: /unused (session not touched), /read (read the counter), /modify (counter + 1),
// /regenerate (sign-in: new id, then set `user`), /destroy (sign-out).
import type http from "node:http";
import connectPgSimple from "connect-pg-simple";
import express from "express";
import expressSession from "express-session";
import type pg from "pg";
import { type PostgresStore, type Session, withSession } from "../mod.ts";

export const SECRET = "bench-secret-0123456789-abcdefghijklmnop";
export const POOL_SIZE = 10;

export type FetchHandler = (req: Request) => Promise<Response>;

/**
 * pgsession: `withSession` with signed cookies (as express signs its own) and the store's
 * defaults, touchAfter included. `signed = false` is only for profiling; `wrap` is another build's
 * `withSession` (the benchmark's `--baseline`); `snapshot` turns the snapshot on (issue 18).
 */
export function pgsessionHandler(
  store: PostgresStore,
  signed = true,
  wrap: typeof withSession = withSession,
  snapshot?: { maxAge: number },
): FetchHandler {
  return wrap(async function app(req: Request, session: Session): Promise<Response> {
    const path = new URL(req.url).pathname;
    switch (path) {
      case "/unused":
        return new Response("ok");
      case "/read":
        return new Response(String((await session.get("counter")) ?? 0));
      case "/modify": {
        const n = (Number(await session.get("counter")) || 0) + 1;
        session.set("counter", n);
        return new Response(String(n));
      }
      case "/regenerate":
        session.regenerate();
        session.set("user", "ada");
        return new Response("signed in");
      case "/destroy":
        session.destroy();
        return new Response("signed out");
      default:
        return new Response("not found", { status: 404 });
    }
  }, { store, ...(signed ? { secrets: [SECRET] } : {}), ...(snapshot ? { snapshot } : {}), onError: logFirstErrors });
}

let errorsLogged = 0;
/**
 * A 500 for a session error, the first 3 of a process logged: a benchmark must not count failures
 * silently. ABORTED is the load generator hanging up at the end of a run, not a failure.
 */
function logFirstErrors(error: Error & { code?: string }, request: Request): Response {
  if (error.code !== "ABORTED" && errorsLogged++ < 3) {
    console.error(`pgsession ${new URL(request.url).pathname}:`, error);
  }
  return new Response(null, { status: 500 });
}

declare module "express-session" {
  interface SessionData {
    counter: number;
    user: string;
  }
}

/**
 * express-session + connect-pg-simple as their READMEs set them up, with `resave: false,
 * saveUninitialized: false`; the prune timer is off so that only request statements are counted.
 */
export function expressApp(pool: pg.Pool, schemaName: string): express.Express {
  const PgStore = connectPgSimple(expressSession);
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  app.use(expressSession({
    store: new PgStore({ pool, schemaName, tableName: "session", pruneSessionInterval: false }),
    secret: SECRET,
    resave: false,
    saveUninitialized: false,
  }));
  app.get("/unused", (_req, res) => void res.end("ok"));
  app.get("/read", (req, res) => void res.end(String(req.session.counter ?? 0)));
  app.get("/modify", (req, res) => {
    req.session.counter = (req.session.counter ?? 0) + 1;
    res.end(String(req.session.counter));
  });
  app.get("/regenerate", (req, res, next) => {
    req.session.regenerate((error) => {
      if (error) return next(error);
      req.session.user = "ada";
      res.end("signed in");
    });
  });
  app.get("/destroy", (req, res, next) => {
    req.session.destroy((error) => error ? next(error) : void res.end("signed out"));
  });
  return app;
}

/**
 * The limit's queries: the cookie holds the row's key itself (no signature, no hash, no codec), a
 * read is one primary-key SELECT and a modify is that SELECT plus one UPDATE. With `prepare`,
 * named statements, planned once per connection; without, plain text, parsed and planned per call.
 * Resolves to the body to send, or null for a request without a key.
 */
function limitQueries(
  pool: pg.Pool,
  table: string,
  prepare: boolean,
): (cookie: string | null | undefined, modify: boolean) => Promise<string | null> {
  const select = `SELECT session_data FROM ${table} WHERE session_key = $1`;
  const update = `UPDATE ${table} SET session_data = $2 WHERE session_key = $1`;
  const run = (name: string, text: string, values: unknown[]) =>
    prepare ? pool.query({ name, text, values }) : pool.query(text, values);
  return async function limitQuery(cookie, modify) {
    const key = /(?:^|;\s*)sid=([^;]+)/.exec(cookie ?? "")?.[1];
    if (!key) return null;
    const { rows } = await run("limit_select", select, [key]);
    const data = rows[0]?.session_data as Buffer | undefined;
    if (modify && data) await run("limit_update", update, [key, data]);
    return String(data?.length ?? 0);
  };
}

/** The limit as a raw node:http handler: no Request/Response objects at all. */
export function limitHandler(pool: pg.Pool, table: string, prepare = false): http.RequestListener {
  const query = limitQueries(pool, table, prepare);
  return function limit(req, res): void {
    query(req.headers.cookie, req.url === "/modify").then(
      (body) => body === null ? void res.writeHead(400).end() : void res.end(body),
      (error) => {
        console.error(error);
        res.writeHead(500).end();
      },
    );
  };
}

/**
 * The limit as a fetch handler, to be served by the same adapter as pgsession, so the two differ
 * only by what the session library does.
 */
export function limitFetchHandler(pool: pg.Pool, table: string, prepare = false): FetchHandler {
  const query = limitQueries(pool, table, prepare);
  return async function limit(req: Request): Promise<Response> {
    const body = await query(req.headers.get("cookie"), new URL(req.url).pathname === "/modify");
    return body === null ? new Response(null, { status: 400 }) : new Response(body);
  };
}

/** Wraps a pool so every statement is counted where the app's session layer sends it. */
export function countingPool(pool: pg.Pool): { pool: pg.Pool; count(): number } {
  let n = 0;
  const counted = new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop === "query") {
        return (...args: unknown[]) => {
          n++;
          return (target.query as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { pool: counted, count: () => n };
}
