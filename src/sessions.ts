/**
 * The request lifecycle: open a session from a request, commit it onto the response. What
 * `withSession` and every framework adapter sit on.
 *
 * @module
 */

import { compileCookie, type CookieOptions, readCookies, requestIsSecure, type ResolvedCookie } from "./cookie.ts";
import type { Connection } from "./client.ts";
import type { Logger } from "./errors.ts";
import { adoptLegacy, compileLegacy, legacyClearCookie, readLegacyId } from "./_legacy.ts";
import { Budget } from "./_budget.ts";
import { SessionRecord } from "./_record.ts";
import { aroundHandler, RequestSessionImpl, type Settings } from "./_request_session.ts";
import { checkSnapshotMaxAge, openSnapshot } from "./_snapshot.ts";
import type { SaveResult, Session, SessionData } from "./session.ts";
import { checkSecrets, unsign } from "./_signature.ts";
import { internalsOf, PostgresStore, type StoreOptions } from "./store.ts";
import { generateId, handleOf, isId } from "./id.ts";

/** How sessions travel with requests; validated once, by {@linkcode createSessions}. */
export interface SessionsOptions<Data extends object = SessionData> {
  /**
   * The store, or the options to make one (`{ client, ttl, … }` or `{ connectionString, … }`).
   */
  store: PostgresStore<Data> | (Connection & StoreOptions);
  /**
   * HMAC-SHA256 secrets (at least 32 characters each) to sign the cookie value with. The first
   * signs, all verify: prepend a new secret to rotate. Without secrets the bare 256-bit id is
   * the cookie value, which is safe too (it is unguessable and only its hash is stored); signing
   * also rejects forged values without a database round trip.
   * @default {undefined}
   */
  secrets?: readonly string[] | undefined;
  /** The cookie's attributes; see {@linkcode CookieOptions} for the defaults. */
  cookie?: CookieOptions | undefined;
  /**
   * Also read the session id from this request header (it wins over the cookie) and send it back
   * in the same response header, for clients without cookies. Ids are never taken from the URL.
   * @default {undefined}
   */
  header?: string | undefined;
  /**
   * Take the request's scheme from `X-Forwarded-Proto` or `Forwarded` (for `cookie.secure:
   * "auto"`), when a TLS-terminating proxy you control sets them. Never enable it where clients
   * reach the server directly: they could then choose the cookie's attributes.
   * @default {false}
   */
  trustProxy?: boolean | undefined;
  /**
   * Commit changes even when the handler answered with a 5xx status. A `destroy()` is committed
   * either way.
   * @default {false}
   */
  commitOnServerError?: boolean | undefined;
  /**
   * Receives warnings: a session that vanished while a request ran, a failed background commit.
   * @default {console}
   */
  logger?: Logger | undefined;
  /**
   * Serve reads from a snapshot: beside the session cookie, a second cookie (`<name>.s`) carries
   * the session's stored data, encrypted and authenticated (AES-256-GCM, key derived from
   * `secrets`, bound to the session id), for `maxAge` seconds (at most 60). A request whose
   * snapshot is fresh reads the session with no database round trip, and a change is one
   * compare-and-set against the snapshot's bytes. The cost: a session ended elsewhere (destroy,
   * regenerate, revoke) stays readable on another client for up to `maxAge` seconds; the client
   * that ended it stops at once. `session.fresh()` reads the database for sensitive actions. Needs
   * `secrets`; not with `header`. A session whose data is over about 2.2 KB gets no snapshot.
   * @default {undefined} (off: every request that reads the session asks the database)
   */
  snapshot?: { maxAge: number } | undefined;
  /**
   * Moves the sessions of express-session + connect-pg-simple over as their browsers come back:
   * a request with a valid old cookie and no pgsession cookie gets the old session's data in a
   * new pgsession session (the old row deleted in the same statement, the new cookie set, the
   * old one cleared). `open()` then sends SQL for that request (two statements, once per
   * browser). pgsession's table must not be the old one's: e.g. `store: { table: "pgsession" }`.
   * See docs/migrating-from-express-session.md.
   * @default {undefined}
   */
  legacy?:
    | {
      /**
       * The name of express-session's cookie (its `name` option).
       * @default {"connect.sid"}
       */
      cookie?: string | undefined;
      /**
       * express-session's `secret` option, as a list: each one verifies the old cookie's signature,
       * first to last. An old cookie no secret verifies is ignored, without SQL.
       */
      secrets: readonly string[];
      /**
       * connect-pg-simple's table (its `tableName`, schema-qualified with its `schemaName`), with the
       * columns `sid`, `sess` (json) and `expire`. pgsession's own table must have another name: the
       * two tables live side by side until the migration is over.
       * @default {"session"}
       */
      table?: string | undefined;
      /**
       * The `Path` of express-session's cookie (its `cookie.path`): the old cookie is cleared with it.
       * @default {"/"}
       */
      path?: string | undefined;
      /**
       * The `Domain` of express-session's cookie (its `cookie.domain`), when it had one.
       * @default {undefined}
       */
      domain?: string | undefined;
    }
    | undefined;
}

/** How {@linkcode RequestSession.commit} writes. */
export interface CommitOptions {
  /**
   * Runs plain updates (data changes and expiry touches of a stored session) after the response,
   * e.g. `ctx.waitUntil.bind(ctx)` on Workers. Inserts, regenerates and destroys are committed
   * before the response either way, since the client's cookie depends on them; plain updates and
   * touches never send a cookie.
   * @default {undefined} (everything is committed before responding)
   */
  waitUntil?: ((promise: Promise<unknown>) => void) | undefined;
  /**
   * A failed background commit: gets the error instead of the logger.
   * @default {undefined}
   */
  onBackgroundError?: ((error: unknown) => unknown) | undefined;
}

/** A session bound to one request. */
export interface RequestSession<Data extends object = SessionData> extends Session<Data> {
  /**
   * Writes what changed and returns the response with `Set-Cookie`, `Vary` and `Cache-Control`
   * added (a copy when its headers are immutable). `Set-Cookie` only when the id changes: a new
   * session stored, a regenerate, a destroy. Nothing but a `destroy()` is written for a 5xx
   * response (unless `commitOnServerError`), and nothing at all once the request was aborted
   * (`request.signal`, read only when there is a write to abandon, and never on Deno, where
   * reading it prints a notice and it aborts on every successful response).
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
  /**
   * The whole request lifecycle in one call: opens the request's session, runs the handler, and
   * commits onto its response; when the handler throws, commits only a pending `destroy()` (a
   * sign-out is never lost) and rethrows. What `withSession` and the framework recipes use.
   *
   * @param request The request.
   * @param handler Gets the session, returns the response.
   * @param options `waitUntil` for updates after the response.
   * @returns The committed response.
   * @throws {SessionError} When the database fails; the cookie is then left untouched.
   * @example A SvelteKit `handle` hook
   * ```ts ignore
   * export const handle = ({ event, resolve }) =>
   *   sessions.handle(event.request, (session) => {
   *     event.locals.session = session;
   *     return resolve(event);
   *   });
   * ```
   */
  handle(
    request: Request,
    handler: (session: RequestSession<Data>) => Response | Promise<Response>,
    options?: CommitOptions,
  ): Promise<Response>;
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
  // A store made from options logs where the sessions log, unless its options name a logger.
  const store = options.store instanceof PostgresStore
    ? options.store
    : new PostgresStore<Data>(options.logger ? { logger: options.logger, ...options.store } : options.store);
  const secrets = options.secrets ? [...options.secrets] : undefined;
  if (secrets) checkSecrets(secrets);
  const cookieFor = compileCookie(options.cookie);
  const header = options.header;
  if (header !== undefined && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(header)) {
    throw new TypeError(`Cannot use header ${JSON.stringify(header)}: not an HTTP header name`);
  }
  const trustProxy = options.trustProxy ?? false;
  const internals = internalsOf(store);
  const policy = internals.policy;
  const legacy = options.legacy
    ? compileLegacy(options.legacy, { ...policy, table: policy.table.options.table })
    : null;
  const legacyIo = {
    run: (what: string, text: string, params: unknown[]) =>
      policy.table.run(what, text, params, new Budget(policy.timeoutMs)),
    hash: handleOf,
    exists: (id: string) => store.exists(id),
    logger: options.logger ?? console,
  };
  let snapshot: { maxAge: number } | null = null;
  if (options.snapshot !== undefined) {
    if (!secrets) throw new TypeError("Cannot use snapshot without secrets: its key is derived from them");
    if (header !== undefined) throw new TypeError("Cannot use snapshot with header: snapshots travel only in cookies");
    snapshot = { maxAge: checkSnapshotMaxAge(options.snapshot?.maxAge as number) };
  }
  const settings: Settings = {
    snapshot,
    store: internals,
    secrets,
    header,
    commitOnServerError: options.commitOnServerError ?? false,
    logger: options.logger ?? console,
  };

  async function readId(request: Request, cookie: ResolvedCookie): Promise<string | null> {
    const candidates = readCookies(request.headers.get("cookie"), cookie.name, MAX_CANDIDATES);
    const fromHeader = header ? request.headers.get(header) : null;
    if (fromHeader) candidates.unshift(fromHeader.replace(/^[ \t]+|[ \t]+$/g, ""));
    for (const value of candidates.slice(0, MAX_CANDIDATES)) {
      const id = secrets ? await unsign(value, secrets) : isId(value) ? value : null;
      if (id) return id;
    }
    return null;
  }

  const sessions: Sessions<Data> = {
    store,
    async handle(request, handler, commitOptions = {}): Promise<Response> {
      const session = await sessions.open(request);
      return (await aroundHandler(session, async () => await handler(session), commitOptions, settings.logger))!;
    },
    async open(request: Request): Promise<RequestSession<Data>> {
      const cookie = cookieFor(requestIsSecure(request, trustProxy));
      const inPath = cookie.path === "/" || pathMatches(new URL(request.url).pathname, cookie.path);
      let id = inPath || header ? await readId(request, cookie) : null;
      // A valid express-session cookie and no pgsession one: move that session over (once per browser).
      const legacyId = legacy && inPath && id === null ? await readLegacyId(request, legacy) : null;
      const adopted = legacyId ? await adoptLegacy(legacyId, legacy!, legacyIo) : null;
      id = adopted?.id ?? id;
      const record = new SessionRecord(settings.store.policy, id ?? generateId(), id !== null);
      record.cookiePending = adopted?.id != null;
      const openedAt = Date.now();
      // A fresh snapshot of this session's row: reads need no statement (snapshots on, signed cookie).
      let snapshotSent = false;
      if (snapshot && id !== null && !adopted) {
        const value = readCookies(request.headers.get("cookie"), `${cookie.name}.s`, 1)[0];
        if (value !== undefined) {
          snapshotSent = true;
          const opened = await openSnapshot(value, {
            id,
            secrets: secrets!,
            maxAge: snapshot.maxAge,
            now: openedAt,
          });
          if (opened) record.applySnapshot(opened);
        }
      }
      const clearLegacy = adopted?.clear ? legacyClearCookie(legacy!, requestIsSecure(request, trustProxy)) : null;
      return new RequestSessionImpl<Data>(record, settings, {
        request,
        cookie,
        inPath,
        clearLegacy,
        snapshotSent,
        openedAt,
      });
    },
  };
  return sessions;
}

/** RFC 6265 path-match: the request path is the cookie path or below it. */
function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath || cookiePath === "/") return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith("/") || requestPath[cookiePath.length] === "/";
}
