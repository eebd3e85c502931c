/**
 * The request lifecycle: open a session from a request, commit it onto the response. What
 * `withSession` and every framework adapter sit on.
 *
 * @module
 */

import {
  compileCookie,
  type CookieOptions,
  readCookies,
  requestIsSecure,
  type ResolvedCookie,
  serializeCookie,
} from "./cookie.ts";
import type { Session, SessionData } from "./session.ts";
import { checkSecrets, sign, unsign } from "./_signature.ts";
import { type CookieValue, type Logger, PostgresStore, type PostgresStoreOptions, type SaveResult } from "./store.ts";
import { isToken } from "./token.ts";
// legacy migration: begin
import { hashToken } from "./token.ts";
import {
  adoptLegacy,
  appendSetCookie,
  compileLegacy,
  legacyClearCookie,
  type LegacyOptions,
  readLegacyId,
} from "./_legacy.ts";
// legacy migration: end

/** How sessions travel with requests; validated once, by {@linkcode createSessions}. */
export interface SessionsOptions<Data extends object = SessionData> {
  /**
   * The store, or the options to make one (`{ client, ttl, … }` or `{ connectionString, … }`).
   */
  store: PostgresStore<Data> | PostgresStoreOptions;
  /**
   * HMAC-SHA256 secrets (at least 32 characters each) to sign the cookie value with. The first
   * signs, all verify: prepend a new secret to rotate. Without secrets the bare 256-bit token is
   * the cookie value, which is safe too (it is unguessable and only its hash is stored); signing
   * also rejects forged values without a database round trip.
   * @default {undefined}
   */
  secrets?: readonly string[];
  /** The cookie's attributes; see {@linkcode CookieOptions} for the defaults. */
  cookie?: CookieOptions;
  /**
   * Also read the session id from this request header (it wins over the cookie) and send it back
   * in the same response header, for clients without cookies. Ids are never taken from the URL.
   * @default {undefined}
   */
  header?: string;
  /**
   * Take the request's scheme from `X-Forwarded-Proto` or `Forwarded` (for `cookie.secure:
   * "auto"`), when a TLS-terminating proxy you control sets them. Never enable it where clients
   * reach the server directly: they could then choose the cookie's attributes.
   * @default {false}
   */
  trustProxy?: boolean;
  /**
   * Commit changes even when the handler answered with a 5xx status. A `destroy()` is committed
   * either way.
   * @default {false}
   */
  commitOnServerError?: boolean;
  /**
   * Receives warnings: a session that vanished while a request ran, a failed background commit.
   * @default {console}
   */
  logger?: Logger;
  // legacy migration: begin
  /**
   * Moves the sessions of express-session + connect-pg-simple over as their browsers come back:
   * a request with a valid old cookie and no pgsession cookie gets the old session's data in a
   * new pgsession session (the old row deleted in the same statement, the new cookie set, the
   * old one cleared). `open()` then sends SQL for that request (two statements, once per
   * browser). pgsession's table must not be the old one's: e.g. `store: { table: "pgsession" }`.
   * @default {undefined}
   */
  legacy?: LegacyOptions;
  // legacy migration: end
}

/** How {@linkcode RequestSession.commit} writes. */
export interface CommitOptions {
  /**
   * Runs plain updates (data changes and expiry touches of a stored session) after the response,
   * e.g. `ctx.waitUntil.bind(ctx)` on Workers. Inserts, regenerates and destroys are committed
   * before the response either way, since the client's cookie depends on them.
   * @default {undefined} (everything is committed before responding)
   */
  waitUntil?: (promise: Promise<unknown>) => void;
  /**
   * A failed background commit: gets the error instead of the logger.
   * @default {undefined}
   */
  onBackgroundError?: (error: unknown) => unknown;
}

/** A session bound to one request. */
export interface RequestSession<Data extends object = SessionData> extends Session<Data> {
  /**
   * Writes what changed and returns the response with `Set-Cookie`, `Vary` and `Cache-Control`
   * added (a copy when its headers are immutable). Nothing but a `destroy()` is written for a 5xx
   * response (unless `commitOnServerError`), and nothing at all once the request was aborted.
   *
   * @param response The handler's response.
   * @param options `waitUntil` for background updates.
   * @returns The response to send.
   * @throws {SessionError} When the database fails; the cookie is then left untouched.
   */
  commit(response: Response, options?: CommitOptions): Promise<Response>;
  /**
   * For a request that failed before it had a response: commits a pending `destroy()` (a sign-out
   * must never be lost) and drops every other change.
   *
   * @throws {SessionError} When the database fails.
   */
  discard(): Promise<void>;
  /**
   * What the commit did, once it is done: `"gone"` when the stored session was destroyed,
   * regenerated or expired by another request meanwhile (this request's changes were dropped and
   * no cookie was sent); `null` before.
   */
  readonly outcome: SaveResult | null;
}

/** Sessions for requests, made by {@linkcode createSessions}. */
export interface Sessions<Data extends object = SessionData> {
  /** The store the sessions live in. */
  readonly store: PostgresStore<Data>;
  /**
   * The request's session, from its cookie (or header). Sends no SQL: the data is read on first
   * use. A missing, malformed, forged, unknown or expired id gives a fresh session.
   *
   * @param request The request.
   * @returns Its session; call `commit(response)` when the response is ready.
   */
  open(request: Request): Promise<RequestSession<Data>>;
}

/** At most this many cookies with the session's name are tried, so forged ones cost little. */
const MAX_CANDIDATES = 4;

/**
 * Validates options once and returns what opens and commits sessions per request. Throws at
 * start-up for options that could never work, instead of failing every request.
 *
 * @typeParam Data The session data's shape.
 * @param options The store (or its options), secrets, cookie and header settings.
 * @returns `open(request)`, and the store.
 * @throws {TypeError} For a cookie a browser would refuse or a bad connection.
 * @throws {RangeError} For a secret under 32 characters or store options out of range.
 * @example In any fetch handler
 * ```ts ignore
 * import pg from "pg";
 * import { createSessions } from "pgsession";
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const sessions = createSessions<{ user: string }>({ store: { client: pool }, secrets: [process.env.SESSION_SECRET!] });
 *
 * export async function handle(request: Request): Promise<Response> {
 *   const session = await sessions.open(request);
 *   const user = await session.get("user");
 *   return await session.commit(new Response(user ? `hello ${user}` : "hello"));
 * }
 * ```
 */
export function createSessions<Data extends object = SessionData>(options: SessionsOptions<Data>): Sessions<Data> {
  if (!options || typeof options !== "object") throw new TypeError("Cannot create sessions: options must be an object");
  const store = options.store instanceof PostgresStore ? options.store : new PostgresStore<Data>(options.store);
  const secrets = options.secrets ? [...options.secrets] : undefined;
  if (secrets) checkSecrets(secrets);
  const cookieFor = compileCookie(options.cookie);
  const header = options.header;
  if (header !== undefined && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(header)) {
    throw new TypeError(`Cannot use header ${JSON.stringify(header)}: not an HTTP header name`);
  }
  const trustProxy = options.trustProxy ?? false;
  const commitOnServerError = options.commitOnServerError ?? false;
  const logger = options.logger ?? console;
  // legacy migration: begin
  const legacy = options.legacy ? compileLegacy(options.legacy, store.options) : null;
  const legacyIo = {
    run: (what: string, text: string, params: unknown[]) => store.query(what, text, params),
    hash: hashToken,
    exists: (token: string) => store.exists(token),
    logger,
  };
  // legacy migration: end

  async function readToken(request: Request, cookie: ResolvedCookie): Promise<string | null> {
    const candidates = readCookies(request.headers.get("cookie"), cookie.name, MAX_CANDIDATES);
    const fromHeader = header ? request.headers.get(header) : null;
    if (fromHeader) candidates.unshift(fromHeader.replace(/^[ \t]+|[ \t]+$/g, ""));
    for (const value of candidates.slice(0, MAX_CANDIDATES)) {
      const token = secrets ? await unsign(value, secrets) : isToken(value) ? value : null;
      if (token) return token;
    }
    return null;
  }

  async function decorate(
    response: Response,
    out: CookieValue | null,
    accessed: boolean,
    cookie: ResolvedCookie,
  ): Promise<Response> {
    if (!out && !accessed) return response;
    let res = response;
    // Few Headers calls: each is costly on some runtimes.
    const before = res.headers.get("Vary");
    const vary = mergeVary(before, header ? ["Cookie", header] : ["Cookie"]);
    if (vary !== before) {
      try {
        res.headers.set("Vary", vary);
      } catch {
        // fetch() responses and Response.redirect() have immutable headers; the body stream moves over.
        res = new Response(response.body, response);
        res.headers.set("Vary", vary);
      }
    }
    if (out) {
      const value = out.token && secrets ? await sign(out.token, secrets[0]!) : out.token;
      try {
        res.headers.append("Set-Cookie", serializeCookie(cookie, value, out.maxAge));
      } catch {
        res = new Response(res.body, res);
        res.headers.append("Set-Cookie", serializeCookie(cookie, value, out.maxAge));
      }
      if (header) res.headers.set(header, value);
    }
    const cacheControl = res.headers.get("Cache-Control");
    const privateOne = privateCacheControl(cacheControl, out !== null);
    if (privateOne !== cacheControl) {
      try {
        res.headers.set("Cache-Control", privateOne);
      } catch {
        res = new Response(res.body, res);
        res.headers.set("Cache-Control", privateOne);
      }
    }
    return res;
  }

  return {
    store,
    async open(request: Request): Promise<RequestSession<Data>> {
      const cookie = cookieFor(requestIsSecure(request, trustProxy));
      const inPath = cookie.path === "/" || pathMatches(new URL(request.url).pathname, cookie.path);
      let token = inPath || header ? await readToken(request, cookie) : null;
      // legacy migration: begin
      const legacyId = legacy && inPath && token === null ? await readLegacyId(request, legacy) : null;
      const adopted = legacyId ? await adoptLegacy(legacyId, legacy!, legacyIo) : null;
      token = adopted?.token ?? token;
      // legacy migration: end
      const session = store.open(token, { signal: request.signal }) as RequestSession<Data>;
      let done = false;
      const once = (what: string) => {
        if (done) throw new TypeError(`Cannot ${what}: this session was committed already`);
        done = true;
      };
      const settle = (result: SaveResult) => {
        (session as Mutable<RequestSession<Data>>).outcome = result;
        if (result === "gone") {
          logger.warn("Session ended by another request while this one ran; its changes were dropped");
        }
        return result;
      };
      // Plain properties, not defineProperties: cheap per request, and the object keeps its shape.
      const bound = session as Mutable<RequestSession<Data>>;
      bound.outcome = null;
      bound.discard = async (): Promise<void> => {
        once("discard");
        const plan = await store.plan(session, { onlyDestroy: true });
        settle(await plan.run());
      };
      bound.commit = async (response: Response, commitOptions: CommitOptions = {}): Promise<Response> => {
        once("commit");
        // The client went away: abandon the session work.
        if (request.signal?.aborted) return response;
        if (response.status === 101) return response; // an upgraded socket carries no cookies
        const failed = response.status >= 500 && !commitOnServerError;
        // Outside the cookie's path the browser would never send the cookie back: store nothing.
        const plan = await store.plan(session, { onlyDestroy: failed || !inPath });
        const { waitUntil } = commitOptions;
        if (waitUntil && !plan.critical && plan.kind !== "none") {
          const out = plan.cookie();
          waitUntil(
            plan.run().then(settle, async (error) => {
              if (commitOptions.onBackgroundError) await commitOptions.onBackgroundError(error);
              else logger.warn("Background session commit failed", { error });
            }),
          );
          return await decorate(response, out, plan.accessed, cookie);
        }
        settle(await plan.run({ signal: request.signal }));
        return await decorate(response, plan.cookie(), plan.accessed, cookie);
      };
      // legacy migration: begin
      if (adopted) {
        // The moved session's cookie (unless the commit set or cleared it), the old one cleared.
        const commit = bound.commit;
        bound.commit = async (response: Response, commitOptions?: CommitOptions): Promise<Response> => {
          const res = await commit(response, commitOptions);
          if (request.signal?.aborted || response.status === 101) return res;
          const moved = adopted.token !== null && session.id === adopted.token && session.outcome !== "gone" &&
            !res.headers.getSetCookie().some((c) => c.startsWith(`${cookie.name}=`));
          const out = await decorate(
            res,
            moved ? { token: adopted.token!, maxAge: legacy!.maxAge } : null,
            true,
            cookie,
          );
          return adopted.clear
            ? appendSetCookie(out, legacyClearCookie(legacy!, requestIsSecure(request, trustProxy)))
            : out;
        };
      }
      // legacy migration: end
      return session;
    },
  };
}

/** RFC 6265 path-match: the request path is the cookie path or below it. */
function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath || cookiePath === "/") return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith("/") || requestPath[cookiePath.length] === "/";
}

/**
 * A Cache-Control value no shared cache may store: `public` and `s-maxage` go, `private` comes in
 * unless the response is `private` or `no-store` already; a response that sets the cookie and
 * said nothing gets `private, no-store`.
 */
function privateCacheControl(existing: string | null, setsCookie: boolean): string {
  if (!existing) return setsCookie ? "private, no-store" : "private";
  const kept = existing.split(",").map((p) => p.trim()).filter((p) =>
    p && !/^(public|s-maxage\s*=.*|proxy-revalidate)$/i.test(p)
  );
  if (!kept.some((p) => /^(private|no-store)$/i.test(p))) kept.unshift("private");
  return kept.join(", ");
}

/** A Vary value with `names` added once each, case-insensitively. */
function mergeVary(existing: string | null, names: string[]): string {
  if (!existing) return names.join(", ");
  const parts = existing.split(",").map((p) => p.trim()).filter(Boolean);
  const seen = new Set(parts.map((p) => p.toLowerCase()));
  if (seen.has("*")) return existing;
  for (const name of names) if (!seen.has(name.toLowerCase())) parts.push(name);
  return parts.join(", ");
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
