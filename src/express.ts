/**
 * Express (4 and 5) and Connect middleware: `req.session` is the request's pgsession
 * {@linkcode Session}, committed before the response's headers go out, whatever sends them
 * (`res.send`, `res.json`, `res.redirect`, `res.end`, `res.writeHead`, streamed writes).
 *
 * `req.session` is typed by your app, since its data's shape is yours: add this to a `.ts` file of
 * the app (with `@types/express` installed, and without `@types/express-session`, which types
 * `req.session` as its own):
 *
 * ```ts ignore
 * import type { Session } from "pgsession";
 *
 * interface Data { user: string; visits: number }
 * declare global {
 *   namespace Express {
 *     interface Request { session: Session<Data> }
 *   }
 * }
 * ```
 *
 * @example
 * ```ts ignore
 * import express from "express";
 * import pg from "pg";
 * import { sessionMiddleware } from "pgsession/express";
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const app = express();
 * app.use(sessionMiddleware({ store: { client: pool }, secrets: [process.env.SESSION_SECRET!] }));
 * app.post("/sign-in", (req, res) => {
 *   req.session.regenerate();
 *   req.session.set("user", "ada");
 *   res.redirect(303, "/");
 * });
 * app.get("/", async (req, res) => {
 *   res.send(`hello ${(await req.session.get("user")) ?? "stranger"}`);
 * });
 * app.listen(3000);
 * ```
 *
 * @module
 */

import type { SessionData } from "./session.ts";
import { createSessions, type RequestSession, type Sessions, type SessionsOptions } from "./sessions.ts";

/**
 * The parts of Node's `IncomingMessage` (Express's `Request`) the middleware reads. Typed here, so
 * the package needs neither Node's nor Express's types.
 */
export interface NodeRequest {
  /** The request method. */
  method?: string | undefined;
  /** The request target; Express's `originalUrl` wins when present. */
  url?: string | undefined;
  /** Express: the target before routers stripped their mount paths. */
  originalUrl?: string;
  /**
   * Express: `"https"` or `"http"`, from `X-Forwarded-Proto` when the app's `trust proxy` setting
   * trusts the proxy. Elsewhere (Connect) the socket tells.
   */
  protocol?: string;
  /** The request headers, names in lower case. */
  headers: Record<string, string | string[] | undefined>;
  /** The connection; a TLS socket has `encrypted: true`. */
  socket?: unknown;
  /** Set by the middleware. */
  session?: unknown;
}

/** The parts of Node's `ServerResponse` (Express's `Response`) the middleware uses. */
export interface NodeResponse {
  /** The status to send. */
  statusCode: number;
  /** The reason phrase to send. */
  statusMessage?: string;
  /** Whether the head went out. */
  readonly headersSent: boolean;
  /** Whether every write was flushed. */
  readonly writableFinished?: boolean;
  /** Whether a write is waiting for `drain`. */
  readonly writableNeedDrain?: boolean;
  /** Reads a header set so far. */
  getHeader(name: string): number | string | string[] | undefined;
  /** Sets a header. */
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  /** Sends the head; wrapped by the middleware. */
  writeHead: (...args: never[]) => unknown;
  /** Writes a body chunk; wrapped by the middleware. */
  write: (...args: never[]) => unknown;
  /** Ends the response; wrapped by the middleware. */
  end: (...args: never[]) => unknown;
  /** Sends the head at once; wrapped by the middleware. */
  flushHeaders?: (...args: never[]) => unknown;
  /** Listens to `close`. */
  on(event: "close", listener: () => void): unknown;
  /** Emits `drain` after writes the middleware held back. */
  emit(event: "drain"): unknown;
}

/** The middleware: `(req, res, next)`, as Express and Connect call it. */
export type SessionRequestHandler = (req: NodeRequest, res: NodeResponse, next: (error?: unknown) => void) => void;

/** What the response side needs of a request session. */
type Committable = Pick<RequestSession, "commit">;

type Call = [(...args: unknown[]) => unknown, unknown[]];

/** The sessions this module put on requests. */
const opened = new WeakSet<object>();

const IDLE = 0;
const COMMITTING = 1;
const DONE = 2;

/**
 * Makes the middleware. Per request it opens the session (no SQL until the session is first
 * read), sets `req.session`, and calls `next()`. When the response starts (the first
 * `writeHead`, `write`, `end` or `flushHeaders`), it holds that call, commits the session (only
 * what changed; for a 5xx response, which is what Express answers a thrown handler with, only a
 * `destroy()`), adds the session's `Set-Cookie` (after the app's own cookies), `Vary` and
 * `Cache-Control` to the response, then lets the held calls proceed in order. A `SessionError`
 * (database down, data too large…) goes to `next(err)` instead, and the app's held response is
 * dropped; the session cookie is never cleared or rotated on an error.
 *
 * Express hides a thrown error from the middleware that ran before the route: the answer's status
 * tells. Express answers 500 (or the error's own `status`); a 5xx writes only a `destroy()`, while
 * an error handler that answers with a 2xx-4xx status has the route's changes committed.
 *
 * The request's URL takes its scheme from Express's `req.protocol`, so `cookie.secure: "auto"`
 * follows the app's `trust proxy` setting.
 *
 * @typeParam Data The session data's shape.
 * @param source The options of `createSessions` (validated now), or a `Sessions` it made.
 * @returns The middleware, for `app.use()`.
 * @throws {TypeError} Or `RangeError` for invalid options.
 * @example
 * ```ts ignore
 * import express from "express";
 * import { sessionMiddleware } from "pgsession/express";
 *
 * const app = express();
 * app.use(sessionMiddleware({ store: { client: pool, table: "pgsession" }, secrets: [secret] }));
 * ```
 */
export function sessionMiddleware<Data extends object = SessionData>(
  source: SessionsOptions<Data> | Sessions<Data>,
): SessionRequestHandler {
  const sessions = isSessions(source) ? source : createSessions<Data>(source);
  return function sessionMiddleware(req, res, next): void {
    if (req.session !== undefined) {
      // Mounted twice (or in a router mounted again): one session per request.
      if (opened.has(req.session as object)) return next();
      return next(
        new TypeError(
          "Cannot open the session: req.session is already set by another middleware (express-session?); pgsession/express replaces it",
        ),
      );
    }
    const controller = new AbortController();
    let request: Request;
    try {
      request = toRequest(req, controller.signal);
    } catch (error) {
      return next(error);
    }
    sessions.open(request).then((session) => {
      hideOwnProperties(session);
      opened.add(session);
      req.session = session;
      intercept(res, session, controller.signal, next);
      // The client went away before the response was done: the session work is abandoned.
      res.on("close", () => {
        if (!res.writableFinished) controller.abort();
      });
      next();
    }, next);
  };
}

/**
 * Holds the response's first head-sending call, commits, copies the session's headers, then
 * replays the held calls. The wrappers stay in place (other middleware may have wrapped them in
 * turn) and pass straight through once the commit is over.
 */
function intercept(
  res: NodeResponse,
  session: Committable,
  signal: AbortSignal,
  next: (error?: unknown) => void,
): void {
  const writeHead = res.writeHead as (...args: unknown[]) => unknown;
  const write = res.write as (...args: unknown[]) => unknown;
  const end = res.end as (...args: unknown[]) => unknown;
  const flushHeaders = res.flushHeaders as ((...args: unknown[]) => unknown) | undefined;
  const held: Call[] = [];
  let state = IDLE;
  let wroteWhileHeld = false;

  const replay = () => {
    let last: unknown = true;
    try {
      for (const [fn, args] of held) last = fn.apply(res, args);
    } catch (error) {
      // What the app's own call would have thrown (a second writeHead, a write after end).
      next(error);
    }
    held.length = 0;
    if (wroteWhileHeld && last !== false && !res.writableNeedDrain) res.emit("drain");
  };
  const start = () => {
    if (state !== IDLE) return;
    state = COMMITTING;
    commitOnto(res, session).then(() => {
      state = DONE;
      replay();
    }, (error) => {
      state = DONE;
      held.length = 0;
      // A client that went away gets nothing; otherwise the app's error handling answers.
      if (!signal.aborted) next(error);
    });
  };

  res.writeHead = function writeHeadOnceCommitted(...args: unknown[]): unknown {
    const status = args[0];
    // An invalid status throws at once, as Node's own check does, before anything is held.
    if (state === DONE || typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 999) {
      return writeHead.apply(res, args);
    }
    const reason = typeof args[1] === "string" ? args[1] : undefined;
    setHeaders(res, reason === undefined ? args[1] : args[2]);
    res.statusCode = status;
    if (reason !== undefined) res.statusMessage = reason;
    held.push([writeHead, reason === undefined ? [status] : [status, reason]]);
    start();
    return res;
  };
  res.write = function writeOnceCommitted(...args: unknown[]): unknown {
    if (state === DONE) return write.apply(res, args);
    held.push([write, args]);
    wroteWhileHeld = true;
    start();
    // Backpressure until the commit is over; `drain` follows the replay.
    return false;
  };
  res.end = function endOnceCommitted(...args: unknown[]): unknown {
    if (state === DONE) return end.apply(res, args);
    held.push([end, args]);
    start();
    return res;
  };
  if (flushHeaders) {
    res.flushHeaders = function flushHeadersOnceCommitted(...args: unknown[]): unknown {
      if (state === DONE) return flushHeaders.apply(res, args);
      held.push([flushHeaders, args]);
      start();
      return undefined;
    };
  }
}

/** Commits the session with the response's status and caching headers, and copies back what it added. */
async function commitOnto(res: NodeResponse, session: Committable): Promise<void> {
  const headers = new Headers();
  for (const name of ["vary", "cache-control"]) {
    const value = headerText(res.getHeader(name));
    if (value !== null) headers.set(name, value);
  }
  // A Response carries 200..599; a 5xx keeps meaning "failed" for the commit.
  const status = Math.min(599, Math.max(200, res.statusCode));
  const committed = await session.commit(new Response(null, { status, headers }));
  for (const [name, value] of committed.headers) {
    if (name !== "set-cookie" && headers.get(name) !== value) res.setHeader(name, value);
  }
  const cookies = committed.headers.getSetCookie();
  if (cookies.length > 0) {
    const existing = res.getHeader("set-cookie");
    const own = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
    res.setHeader("Set-Cookie", [...own, ...cookies]);
  }
}

/** Applies the headers given to `writeHead` as Node does: each one replaces what was set. */
function setHeaders(res: NodeResponse, headers: unknown): void {
  if (!headers || typeof headers !== "object") return;
  if (!Array.isArray(headers)) {
    for (const [name, value] of Object.entries(headers)) {
      if (value !== undefined) res.setHeader(name, value as string | number | string[]);
    }
    return;
  }
  // Raw arrays: [name, value, name, value, …] or [[name, value], …]; repeated names add up.
  const grouped = new Map<string, { name: string; values: string[] }>();
  const add = (name: unknown, value: unknown) => {
    if (typeof name !== "string" || value === undefined) return;
    const key = name.toLowerCase();
    let entry = grouped.get(key);
    if (!entry) grouped.set(key, entry = { name, values: [] });
    for (const v of Array.isArray(value) ? value : [value]) entry.values.push(String(v));
  };
  if (headers.every((h) => Array.isArray(h))) { for (const [name, value] of headers as unknown[][]) add(name, value); }
  else for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i], headers[i + 1]);
  for (const { name, values } of grouped.values()) res.setHeader(name, values.length === 1 ? values[0]! : values);
}

function headerText(value: number | string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(", ") : String(value);
}

// A host as browsers send it: a name or IPv4, or a bracketed IPv6, and an optional port.
const HOST = /^(?:[A-Za-z0-9._~!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** A web `Request` with the Node request's method, absolute URL and headers (no body). */
function toRequest(req: NodeRequest, signal: AbortSignal): Request {
  const encrypted = (req.socket as { encrypted?: unknown } | null | undefined)?.encrypted === true;
  const protocol = req.protocol === "https" || req.protocol === "http" ? req.protocol : encrypted ? "https" : "http";
  const hostHeader = req.headers.host;
  const host = typeof hostHeader === "string" && HOST.test(hostHeader) ? hostHeader : "localhost";
  const target = req.originalUrl ?? req.url ?? "/";
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    try {
      if (Array.isArray(value)) { for (const v of value) headers.append(name, v); }
      else headers.append(name, value);
    } catch {
      // A header the fetch API refuses is one the session never reads.
    }
  }
  const init = { method: req.method ?? "GET", headers, signal };
  const url = target.startsWith("/") ? `${protocol}://${host}${target}` : `${protocol}://${host}/`;
  try {
    return new Request(url, init);
  } catch {
    // CONNECT, TRACE or an unparsable target: the session needs only the scheme and headers.
    return new Request(`${protocol}://${host}/`, { ...init, method: "GET" });
  }
}

/**
 * Makes the request session's own properties (`commit`, `discard`, `outcome`) non-enumerable, so
 * `req.session` shows no methods to `Object.keys` or `JSON.stringify`, as express-session's did not.
 */
function hideOwnProperties(session: object): void {
  for (const key of Object.keys(session)) Object.defineProperty(session, key, { enumerable: false });
}

function isSessions<Data extends object>(value: SessionsOptions<Data> | Sessions<Data>): value is Sessions<Data> {
  return typeof (value as Partial<Sessions<Data>>).open === "function";
}
