/**
 * The request lifecycle: open a session from a request, commit it onto the response. What
 * `withSession` and every framework adapter sit on.
 *
 * @module
 */

import { cookieAfter, planFor, runCommit } from "./_commit.ts";
import {
  compileCookie,
  type CookieOptions,
  readCookies,
  requestIsSecure,
  type ResolvedCookie,
  serializeCookie,
} from "./cookie.ts";
import type { Connection } from "./client.ts";
import type { Logger } from "./errors.ts";
import { addSessionHeaders } from "./_headers.ts";
import { adoptLegacy, compileLegacy, legacyClearCookie, readLegacyId } from "./_legacy.ts";
import { Budget } from "./_budget.ts";
import { SessionRecord } from "./_record.ts";
import { SessionImpl } from "./_session.ts";
import type { SaveResult, Session, SessionData } from "./session.ts";
import { checkSecrets, sign, unsign } from "./_signature.ts";
import { internalsOf, PostgresStore, type StoreInternals, type StoreOptions } from "./store.ts";
import { generateToken, hashToken, isToken } from "./token.ts";

/** How sessions travel with requests; validated once, by {@linkcode createSessions}. */
export interface SessionsOptions<Data extends object = SessionData> {
  /**
   * The store, or the options to make one (`{ client, ttl, … }` or `{ connectionString, … }`).
   */
  store: PostgresStore<Data> | (Connection & StoreOptions);
  /**
   * HMAC-SHA256 secrets (at least 32 characters each) to sign the cookie value with. The first
   * signs, all verify: prepend a new secret to rotate. Without secrets the bare 256-bit token is
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
   * added (a copy when its headers are immutable). `Set-Cookie` only when the token changes: a new
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
}

/** At most this many cookies with the session's name are tried, so forged ones cost little. */
const MAX_CANDIDATES = 4;

/** What `createSessions` validated once, shared by every request session it opens. */
interface Settings {
  readonly store: StoreInternals;
  readonly secrets: readonly string[] | undefined;
  readonly header: string | undefined;
  readonly commitOnServerError: boolean;
  readonly logger: Logger;
}

/** Deno prints a notice whenever a `Deno.serve` request's `signal` is read, and aborts it on success. */
const readsSignal = typeof (globalThis as { Deno?: unknown }).Deno === "undefined";

/** The session of one request: a {@linkcode Session} that commits itself onto the response. */
class RequestSessionImpl<Data extends object> extends SessionImpl<Data> implements RequestSession<Data> {
  readonly #record: SessionRecord;
  readonly #settings: Settings;
  readonly #request: Request;
  readonly #cookie: ResolvedCookie;
  readonly #inPath: boolean;
  /** A `Set-Cookie` clearing express-session's cookie, after a legacy session was moved over. */
  readonly #clearLegacy: string | null;
  #done = false;

  constructor(
    record: SessionRecord,
    settings: Settings,
    request: Request,
    cookie: ResolvedCookie,
    inPath: boolean,
    clearLegacy: string | null = null,
  ) {
    super(record, settings.store.users);
    this.#record = record;
    this.#settings = settings;
    this.#request = request;
    this.#cookie = cookie;
    this.#inPath = inPath;
    this.#clearLegacy = clearLegacy;
  }

  get outcome(): SaveResult | null {
    return this.#record.outcome;
  }

  async commit(response: Response, options: CommitOptions = {}): Promise<Response> {
    this.#once("commit");
    if (response.status === 101) return response; // an upgraded socket carries no cookies
    const failed = response.status >= 500 && !this.#settings.commitOnServerError;
    // Outside the cookie's path the browser would never send the cookie back: store nothing.
    const plan = await planFor(this.#record, failed || !this.#inPath);
    if (plan.kind !== "none") {
      const signal = readsSignal ? this.#request.signal : undefined;
      // The client went away: abandon the session work.
      if (signal?.aborted) return response;
      const { waitUntil } = options;
      if (waitUntil && !plan.critical) {
        waitUntil(
          runCommit(this.#record, plan, this.#record.budget()).then((result) => this.#settle(result), async (error) => {
            if (options.onBackgroundError) await options.onBackgroundError(error);
            else this.#settings.logger.warn("Background session commit failed", { error });
          }),
        );
      } else {
        this.#settle(await runCommit(this.#record, plan, this.#record.budget(signal)));
      }
    } else this.#record.outcome = "unchanged";
    return await this.#decorate(response, plan.accessed);
  }

  async discard(): Promise<void> {
    this.#once("discard");
    const plan = await planFor(this.#record, true);
    this.#settle(await runCommit(this.#record, plan, this.#record.budget()));
  }

  #once(what: string): void {
    if (this.#done) throw new TypeError(`Cannot ${what}: this session was committed already`);
    this.#done = true;
  }

  #settle(result: SaveResult): void {
    if (result === "gone") {
      this.#settings.logger.warn("Session ended by another request while this one ran; its changes were dropped");
    }
  }

  async #decorate(response: Response, accessed: boolean): Promise<Response> {
    const record = this.#record;
    // A session moved over from express-session is stored but the client does not hold its token yet.
    const result = record.cookiePending && record.rowToken === record.token && record.outcome !== "gone"
      ? "created"
      : record.outcome;
    const out = result === null
      ? null
      : cookieAfter(result, record.requestToken !== null, record.token, record.deadlineMs, record.nowMs);
    const { secrets, header } = this.#settings;
    const value = out === null ? null : out.token && secrets ? await sign(out.token, secrets[0]!) : out.token;
    return addSessionHeaders(response, {
      setCookie: out === null ? null : serializeCookie(this.#cookie, value!, out.maxAge),
      idHeader: header && value !== null ? [header, value] : null,
      vary: header ? [header] : [],
      accessed,
      extraCookies: this.#clearLegacy ? [this.#clearLegacy] : undefined,
    });
  }
}

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
  const policy = internalsOf(store).policy;
  const legacy = options.legacy
    ? compileLegacy(options.legacy, { ...policy, table: policy.table.options.table })
    : null;
  const legacyIo = {
    run: (what: string, text: string, params: unknown[]) =>
      policy.table.run(what, text, params, new Budget(policy.timeoutMs)),
    hash: hashToken,
    exists: (token: string) => store.exists(token),
    logger: options.logger ?? console,
  };
  const settings: Settings = {
    store: internalsOf(store),
    secrets,
    header,
    commitOnServerError: options.commitOnServerError ?? false,
    logger: options.logger ?? console,
  };

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

  return {
    store,
    async open(request: Request): Promise<RequestSession<Data>> {
      const cookie = cookieFor(requestIsSecure(request, trustProxy));
      const inPath = cookie.path === "/" || pathMatches(new URL(request.url).pathname, cookie.path);
      let token = inPath || header ? await readToken(request, cookie) : null;
      // A valid express-session cookie and no pgsession one: move that session over (once per browser).
      const legacyId = legacy && inPath && token === null ? await readLegacyId(request, legacy) : null;
      const adopted = legacyId ? await adoptLegacy(legacyId, legacy!, legacyIo) : null;
      token = adopted?.token ?? token;
      const record = new SessionRecord(settings.store.policy, token ?? generateToken(), token !== null);
      record.cookiePending = adopted?.token != null;
      const clear = adopted?.clear ? legacyClearCookie(legacy!, requestIsSecure(request, trustProxy)) : null;
      return new RequestSessionImpl<Data>(record, settings, request, cookie, inPath, clear);
    },
  };
}

/** RFC 6265 path-match: the request path is the cookie path or below it. */
function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath || cookiePath === "/") return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith("/") || requestPath[cookiePath.length] === "/";
}
