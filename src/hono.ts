/**
 * Hono middleware: a typed session on the context (`c.var.session`), committed after the rest
 * of the chain with Hono's own headers and cookies kept.
 *
 * @example
 * ```ts ignore
 * import { Hono } from "hono";
 * import { sessionMiddleware, type SessionEnv } from "pgsession/hono";
 *
 * type Data = { user: string; visits: number };
 * const app = new Hono<{ Bindings: { DATABASE_URL: string; SESSION_SECRET: string } } & SessionEnv<Data>>();
 * app.use(sessionMiddleware((c) => ({
 *   store: { connectionString: c.env.DATABASE_URL },
 *   secrets: [c.env.SESSION_SECRET],
 * })));
 * app.get("/", async (c) => {
 *   const visits = ((await c.var.session.get("visits")) ?? 0) + 1;
 *   c.var.session.set("visits", visits);
 *   return c.text(`visits: ${visits}`);
 * });
 * export default app;
 * ```
 *
 * @module
 */

import type { Context, Env, MiddlewareHandler } from "hono";
import { isSessions, SessionsCache } from "./_lifecycle.ts";
import { aroundHandler } from "./_request_session.ts";
import { createSessions, type RequestSession, type Sessions, type SessionsOptions } from "./sessions.ts";
import type { SessionData } from "./session.ts";

/** The context variables the middleware sets: `c.get("session")`, `c.var.session`. */
export interface SessionVariables<Data extends object = SessionData> {
  /** This request's session; committed by the middleware after the handler. */
  session: RequestSession<Data>;
}

/**
 * A Hono `Env` with the session variable, for `new Hono<SessionEnv<Data>>()`; intersect it with
 * your bindings: `new Hono<{ Bindings: Bindings } & SessionEnv<Data>>()`.
 */
export interface SessionEnv<Data extends object = SessionData> {
  /** See {@linkcode SessionVariables}. */
  Variables: SessionVariables<Data>;
}

/** How the middleware commits. */
export interface SessionMiddlewareOptions {
  /**
   * On Workers (when `c.executionCtx` exists), hand plain UPDATEs to `c.executionCtx.waitUntil`
   * so the response does not wait for them; inserts, regenerates and destroys are committed
   * before responding either way. `false` commits everything before responding.
   * @default {true}
   */
  background?: boolean | undefined;
}

/**
 * What the middleware takes: the options of `createSessions`, a `Sessions` it made, or a function
 * of the Hono context returning either. The function runs once per `c.env` object (the bindings
 * on Workers; once overall where `c.env` is not an object) and its result is kept, so options are
 * validated once, not on every request: read bindings in it, not the request. Where `c.env` is
 * made per request (`@hono/node-server`, `Deno.serve(app.fetch)`), pass options instead.
 */
export type SessionSource<Data extends object, E extends Env> =
  | SessionsOptions<Data>
  | Sessions<Data>
  | ((c: Context<E>) => SessionsOptions<Data> | Sessions<Data>);

/**
 * Makes a Hono middleware that opens the request's session (no SQL until it is first read),
 * puts it on the context as `session`, runs the rest of the chain, then commits it into `c.res`:
 * only what changed; when a handler threw (its error already went to `app.onError`) or answered
 * 5xx (unless `commitOnServerError`), only a `destroy()` is written. Headers and cookies set with `c.header()` or
 * `setCookie()`, and redirects, are kept. A `SessionError` from the commit (database down, data
 * too large…) is thrown to `app.onError`; the session cookie is then left untouched.
 *
 * @typeParam Data The session's data.
 * @typeParam E Your app's `Env` (its `Bindings`), for the options function's `c.env`.
 * @param source Options for `createSessions`, a `Sessions`, or a function of the context
 *   returning either (see {@linkcode SessionSource}).
 * @param options How to commit (see {@linkcode SessionMiddlewareOptions}).
 * @returns The middleware, for `app.use()`.
 * @throws {TypeError} Or `RangeError`/`SessionError` `CONFIG` for invalid options: at once for
 *   an options object, on the first request for an options function.
 * @example Routes that never touch the session send no SQL and set no cookie
 * ```ts
 * import { Hono } from "hono";
 * import { sessionMiddleware, type SessionEnv } from "pgsession/hono";
 *
 * const app = new Hono<SessionEnv<{ user: string }>>();
 * app.use(sessionMiddleware({ store: { connectionString: "postgres://user:password@ep-example.us-east-2.aws.neon.tech/db" } }));
 * app.get("/health", (c) => c.text("ok"));
 *
 * const res = await app.request("/health");
 * console.assert((await res.text()) === "ok" && res.headers.get("set-cookie") === null);
 * ```
 * @example On Node, with a pool made at start-up
 * ```ts ignore
 * import { Hono } from "hono";
 * import { serve } from "@hono/node-server";
 * import pg from "pg";
 * import { sessionMiddleware, type SessionEnv } from "pgsession/hono";
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const app = new Hono<SessionEnv<{ user: string }>>();
 * app.use(sessionMiddleware({ store: { client: pool }, secrets: [process.env.SESSION_SECRET!] }));
 * app.post("/sign-in", (c) => {
 *   c.var.session.regenerate();
 *   c.var.session.set("user", "ada");
 *   return c.redirect("/");
 * });
 * serve(app);
 * ```
 */
export function sessionMiddleware<Data extends object = SessionData, E extends Env = SessionEnv<Data>>(
  source: SessionSource<Data, E>,
  options: SessionMiddlewareOptions = {},
): MiddlewareHandler<E & SessionEnv<Data>> {
  const background = options.background ?? true;
  const fixed = typeof source === "function" ? null : isSessions(source) ? source : createSessions<Data>(source);
  const cache = new SessionsCache<Data>();
  const unbound = {};
  const sessionsFor = (c: Context<E>): Sessions<Data> => {
    if (fixed) return fixed;
    const env: unknown = c.env;
    const build = source as (c: Context<E>) => SessionsOptions<Data> | Sessions<Data>;
    return cache.get(typeof env === "object" && env !== null ? env : unbound, () => build(c));
  };

  return async function sessionMiddleware(c, next): Promise<void> {
    const session = await sessionsFor(c as unknown as Context<E>).open(c.req.raw);
    c.set("session", session);
    const waitUntil = background ? waitUntilOf(c) : undefined;
    const response = await aroundHandler(
      session,
      async () => {
        await next();
        // A thrown error was already turned into c.res by app.onError: only a sign-out is written.
        return c.error ? null : c.res;
      },
      waitUntil ? { waitUntil } : {},
      console,
    );
    if (!response) return;
    // Hono merges the previous response's headers into an assigned one, which would drop the
    // session's Set-Cookie and Vary from a copied response; clearing first assigns it as is.
    c.res = undefined;
    c.res = response;
  };
}

/** `c.executionCtx.waitUntil` on Workers; the getter throws elsewhere (Node, Deno, Bun). */
function waitUntilOf(c: Context): ((promise: Promise<unknown>) => void) | undefined {
  try {
    const ctx = c.executionCtx;
    return typeof ctx?.waitUntil === "function" ? (promise) => ctx.waitUntil(promise) : undefined;
  } catch {
    return undefined;
  }
}
