/**
 * withSession: sessions for any fetch handler, loaded lazily and committed after the handler.
 *
 * @module
 */

import { type CookieOptions, readCookies, type ResolvedCookie, resolveCookie, serializeCookie } from "./cookie.ts";
import { SessionError } from "./errors.ts";
import {
  createSession,
  isModified,
  loadSession,
  mergedData,
  newState,
  type Session,
  type SessionData,
  type SessionState,
  storedState,
} from "./session.ts";
import { checkSecrets, sign, unsign } from "./signature.ts";
import { fetchInto, PostgresStore, type PostgresStoreOptions, type SaveResult } from "./store.ts";
import { generateToken, isToken } from "./token.ts";

/** What `withSession` needs for one request. */
export interface WithSessionOptions<Data extends SessionData = SessionData> {
  /**
   * The store, or the options to make one for this request (`{ connectionString, ttl, … }`):
   * on Workers, build it from `env` in an options function.
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
   * in the same response header, for clients without cookies (beego's `EnableSidInHTTPHeader`).
   * Ids are never taken from the URL.
   * @default {undefined}
   */
  header?: string;
  /**
   * When given, the commit runs in the background after the response is built (e.g.
   * `ctx.waitUntil.bind(ctx)` on Workers); errors then go to `onError` or reject that promise.
   * @default {undefined} (commit before responding)
   */
  waitUntil?: (promise: Promise<unknown>) => void;
  /**
   * Called once this request's session work is over (after the commit, also in the background):
   * end a per-request `Pool` here.
   * @default {undefined}
   */
  release?: () => unknown;
  /**
   * Commit even when the handler answered with a 5xx status.
   * @default {false}
   */
  commitOnServerError?: boolean;
  /**
   * Turns a `SessionError` (database down, data too large…) into a response. Without it the
   * wrapped handler rejects with the error. The cookie is never cleared or rotated on an error.
   * @default {undefined}
   */
  onError?: (error: SessionError, request: Request) => Response | Promise<Response>;
}

/**
 * The platform arguments the wrapped handler accepts: whichever of the handler's and the options
 * function's extra parameters is the longer list (e.g. Workers' `[env, ctx]`).
 */
export type Longer<A extends unknown[], B extends unknown[]> = B extends [...A, ...unknown[]] ? B : A;

/** A fetch handler that receives the request's session after the request. */
export type SessionHandler<Data extends SessionData, Rest extends unknown[]> = (
  request: Request,
  session: Session<Data>,
  ...rest: Rest
) => Response | Promise<Response>;

/**
 * Wraps a fetch handler so it gets a session. The session is read from the database on the
 * first `get`/`has`/`keys`/`entries`, never before, and committed after the handler: only what
 * changed, nothing when the handler throws or answers 5xx. Extra arguments (Workers' `env` and
 * `ctx`, `Deno.serve`'s `info`) pass through.
 *
 * Cookies: the value is the token (signed when `secrets` are given); `HttpOnly; Secure;
 * SameSite=Lax; Path=/` and the `__Host-` prefix by default; Set-Cookie only when the session is
 * new, changed id, rolled its expiry forward or was destroyed, with `Cache-Control: private,
 * no-store` (unless the handler set one) and `Vary: Cookie`. Malformed, oversized, badly signed
 * or unknown cookies give a fresh session; when several cookies share the name, the first
 * well-formed (and well-signed) one wins.
 *
 * @param handler Your handler; it gets `(request, session, ...rest)`.
 * @param options The options, or a function of `(request, ...rest)` returning them (possibly
 *   async), for values that live in per-request bindings such as Workers' `env`.
 * @returns A fetch handler `(request, ...rest) => Promise<Response>`.
 * @example Deno.serve
 * ```ts ignore
 * import { withSession } from "pgsession";
 *
 * Deno.serve(withSession(async (req, session) => {
 *   const visits = ((await session.get("visits")) as number ?? 0) + 1;
 *   session.set("visits", visits);
 *   return new Response(`visit ${visits}`);
 * }, { store: { connectionString: Deno.env.get("DATABASE_URL")! } }));
 * ```
 */
export function withSession<
  Data extends SessionData = SessionData,
  Rest extends unknown[] = [],
  OptionsRest extends unknown[] = Rest,
>(
  handler: SessionHandler<Data, Rest>,
  options: WithSessionOptions<Data> | ((request: Request, ...rest: OptionsRest) => WithSessionOptions<Data> | Promise<WithSessionOptions<Data>>),
): (request: Request, ...rest: Longer<Rest, OptionsRest>) => Promise<Response> {
  return async function sessionHandler(request: Request, ...extra: Longer<Rest, OptionsRest>): Promise<Response> {
    // Both callbacks get the platform's arguments; each declares only as many as it needs.
    const rest = extra as unknown[];
    const opts = typeof options === "function" ? await options(request, ...(rest as OptionsRest)) : options;
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await opts.release?.();
    };
    try {
      const store = opts.store instanceof PostgresStore ? opts.store : new PostgresStore<Data>(opts.store);
      if (opts.secrets) checkSecrets(opts.secrets);
      const cookie = resolveCookie(opts.cookie, request.url);
      const incoming = await readToken(request, cookie, opts);
      const state = incoming ? lazyState(store, incoming) : newState(generateToken());
      const session = createSession<Data>(state);

      // A throwing handler persists nothing; its error goes to the catch below.
      const response = await handler(request, session, ...(rest as Rest));
      if (response.status >= 500 && !opts.commitOnServerError) return response;
      if (response.status === 101) return response; // an upgraded socket carries no cookies

      if (opts.waitUntil) {
        // Settle now what decides the headers (whether the stored row exists); write later.
        if (incoming && isModified(state)) await loadSession(state);
        const out = outgoing(state, incoming, store, "pending");
        // The background commit owns the release from here on.
        released = true;
        const background = store.save(session)
          .catch((error) => onBackgroundError(error, request, opts))
          .finally(() => opts.release?.());
        opts.waitUntil(background);
        return decorate(response, state, cookie, await encodeOutgoing(out, opts), opts.header);
      }
      const result = await store.save(session);
      return decorate(response, state, cookie, await encodeOutgoing(outgoing(state, incoming, store, result), opts), opts.header);
    } catch (error) {
      if (error instanceof SessionError && opts.onError) return await opts.onError(error, request);
      throw error;
    } finally {
      await release();
    }
  };
}

function lazyState<Data extends SessionData>(store: PostgresStore<Data>, token: string): SessionState {
  const state = storedState(token);
  state.loader = async () => {
    if (await fetchInto(store, state)) return;
    // Unknown or expired: strict mode, never adopt an id we did not issue.
    state.storedToken = null;
    state.base = new Map();
    if (state.token === token) state.token = generateToken();
  };
  return state;
}

/** The token from the header (when enabled) or the first well-formed cookie; `null` otherwise. */
async function readToken(request: Request, cookie: ResolvedCookie, opts: { header?: string; secrets?: readonly string[] }): Promise<string | null> {
  const candidates = readCookies(request.headers.get("cookie"), cookie.name);
  const fromHeader = opts.header ? request.headers.get(opts.header) : null;
  if (fromHeader) candidates.unshift(fromHeader.trim());
  for (const value of candidates) {
    const token = opts.secrets ? await unsign(value, opts.secrets) : isToken(value) ? value : null;
    if (token) return token;
  }
  return null;
}

/** The session's token (or `""` to clear it) and the cookie's lifetime for this response. */
interface Outgoing {
  value: string;
  maxAge: number;
}

/**
 * What the response tells the client, from the session's state after the commit, or, with
 * `waitUntil`, from what the commit is about to do.
 */
function outgoing<Data extends SessionData>(
  state: SessionState,
  incoming: string | null,
  store: PostgresStore<Data>,
  result: SaveResult | "pending",
): Outgoing | null {
  const first = Math.min(store.options.ttl, store.options.absoluteTtl ?? Infinity);
  const pending = result === "pending";
  // A new session is inserted only when it ends up holding something.
  const stored = state.storedToken !== null || (pending && mergedData(state).size > 0);
  if (stored && state.token !== incoming) return { value: state.token, maxAge: pending ? first : state.remaining ?? first };
  if (stored && state.rolled) return { value: state.token, maxAge: state.remaining ?? first };
  const destroyed = pending ? state.doomed.length > 0 : result === "destroyed";
  if (!stored && incoming && destroyed) return { value: "", maxAge: 0 };
  return null;
}

async function onBackgroundError<Data extends SessionData>(error: unknown, request: Request, opts: WithSessionOptions<Data>): Promise<void> {
  if (error instanceof SessionError && opts.onError) {
    await opts.onError(error, request);
    return;
  }
  throw error;
}

/** Signs the outgoing token when secrets are configured. */
async function encodeOutgoing<Data extends SessionData>(out: Outgoing | null, opts: WithSessionOptions<Data>): Promise<Outgoing | null> {
  if (!out || !out.value || !opts.secrets) return out;
  return { value: await sign(out.value, opts.secrets[0]!), maxAge: out.maxAge };
}

/** Adds the session headers, copying the response when its headers are immutable. */
function decorate(response: Response, state: SessionState, cookie: ResolvedCookie, out: Outgoing | null, header: string | undefined): Response {
  if (!out && !state.accessed) return response;
  let res = response;
  try {
    res.headers.append("Vary", "Cookie");
  } catch {
    // fetch() responses and Response.redirect() have immutable headers; the body stream moves over.
    res = new Response(response.body, response);
    res.headers.append("Vary", "Cookie");
  }
  dedupeVary(res.headers);
  if (out) {
    res.headers.append("Set-Cookie", serializeCookie(cookie, out.value, out.maxAge));
    if (header) res.headers.set(header, out.value);
    if (!res.headers.has("Cache-Control")) res.headers.set("Cache-Control", "private, no-store");
  }
  return res;
}

function dedupeVary(headers: Headers): void {
  const parts = (headers.get("Vary") ?? "").split(",").map((p) => p.trim()).filter(Boolean);
  const seen = new Set<string>();
  const kept = parts.filter((p) => !seen.has(p.toLowerCase()) && seen.add(p.toLowerCase()));
  headers.set("Vary", kept.join(", "));
}
