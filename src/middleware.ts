/**
 * withSession: sessions for any fetch handler, loaded lazily and committed after the handler.
 *
 * @module
 */

import { SessionsCache } from "./_lifecycle.ts";
import { SessionError } from "./errors.ts";
import type { SessionData } from "./session.ts";
import { createSessions, type RequestSession, type SessionsOptions } from "./sessions.ts";

/** What `withSession` needs: the {@linkcode SessionsOptions} plus per-request hooks. */
export interface WithSessionOptions<Data extends object = SessionData> extends SessionsOptions<Data> {
  /**
   * When given, plain updates of a stored session run in the background after the response is
   * built (e.g. `ctx.waitUntil.bind(ctx)` on Workers); inserts, regenerates and destroys are
   * committed first. A background failure goes to `onError`, or else to the logger.
   * @default {undefined} (commit before responding)
   */
  waitUntil?: ((promise: Promise<unknown>) => void) | undefined;
  /**
   * Called once this request's session work is over (after the commit, also in the background):
   * end a per-request `Pool` here. An error it throws is logged; the response stands.
   * @default {undefined}
   */
  release?: (() => unknown) | undefined;
  /**
   * Turns a `SessionError` (database down, data too large, bad options…) into a response.
   * Without it the wrapped handler rejects with the error. The cookie is never cleared or
   * rotated on an error.
   * @default {undefined}
   */
  onError?: ((error: SessionError, request: Request) => Response | Promise<Response>) | undefined;
}

/**
 * The platform arguments the wrapped handler accepts: whichever of the handler's and the options
 * function's extra parameters is the longer list (e.g. Workers' `[env, ctx]`).
 */
export type PlatformArgs<A extends unknown[], B extends unknown[]> = B extends [...A, ...unknown[]] ? B : A;

/** A fetch handler that receives the request's session after the request. */
export type SessionHandler<Data extends object, Rest extends unknown[]> = (
  request: Request,
  session: RequestSession<Data>,
  ...rest: Rest
) => Response | Promise<Response>;

/**
 * Wraps a fetch handler so it gets a session. The session is read from the database on the
 * first `get`/`has`/`keys`/`entries`, never before, and committed after the handler: only what
 * changed; for a handler that throws or answers 5xx, only a `destroy()`. Extra arguments
 * (Workers' `env` and `ctx`, `Deno.serve`'s `info`) pass through.
 *
 * Cookies: the value is the id (signed when `secrets` are given); `HttpOnly; Secure;
 * SameSite=Lax; Path=/` and the `__Host-` prefix by default; Set-Cookie only when the id
 * changes (a new session stored, a regenerate, a destroy), living until the absolute deadline, with a `Cache-Control` no shared
 * cache may store and `Vary: Cookie`. Malformed, oversized, badly signed or unknown cookies give
 * a fresh session; when several cookies share the name, the first well-formed (and well-signed)
 * one of the first four wins.
 *
 * @param handler Your handler; it gets `(request, session, ...rest)`.
 * @param options The options, validated now; or a function of `(request, ...rest)` returning
 *   them (possibly async), for values that live in per-request bindings such as Workers' `env`.
 * @returns A fetch handler `(request, ...rest) => Promise<Response>`.
 * @throws {TypeError} For unusable options given as an object (a function's are reported per
 *   request as `SessionError("CONFIG")`).
 * @throws {RangeError} For a secret under 32 characters or store options out of range.
 * @example Deno.serve
 * ```ts ignore
 * import { withSession } from "pgsession";
 *
 * interface Data { visits: number }
 * Deno.serve(withSession<Data>(async (req, session) => {
 *   const visits = ((await session.get("visits")) ?? 0) + 1;
 *   session.set("visits", visits);
 *   return new Response(`visit ${visits}`);
 * }, { store: { client: pool }, secrets: [Deno.env.get("SESSION_SECRET")!] }));
 * ```
 */
export function withSession<
  Data extends object = SessionData,
  Rest extends unknown[] = [],
  OptionsRest extends unknown[] = Rest,
>(
  handler: SessionHandler<Data, Rest>,
  options:
    | WithSessionOptions<Data>
    | ((request: Request, ...rest: OptionsRest) => WithSessionOptions<Data> | Promise<WithSessionOptions<Data>>),
): (request: Request, ...rest: PlatformArgs<Rest, OptionsRest>) => Promise<Response> {
  // An options object is validated here, at start-up; an options function's result once per distinct set of values.
  const fixed = typeof options === "function" ? null : createSessions(options);
  const cache = new SessionsCache<Data>();

  return async function sessionHandler(request: Request, ...extra: PlatformArgs<Rest, OptionsRest>): Promise<Response> {
    // Both callbacks get the platform's arguments; each declares only as many as it needs.
    const rest = extra as unknown[];
    const opts = typeof options === "function" ? await options(request, ...(rest as OptionsRest)) : options;
    const logger = opts.logger ?? console;
    let backgroundOwnsRelease = false;
    const release = async () => {
      try {
        await opts.release?.();
      } catch (error) {
        logger.warn("release() failed after the session work", { error });
      }
    };
    try {
      const sessions = fixed ?? cache.get(null, () => opts as SessionsOptions<Data>);
      const waitUntil = opts.waitUntil;
      return await sessions.handle(request, (session) => handler(request, session, ...(rest as Rest)), {
        waitUntil: waitUntil &&
          ((promise) => {
            backgroundOwnsRelease = true;
            waitUntil(promise.finally(release));
          }),
        onBackgroundError: async (error) => {
          if (error instanceof SessionError && opts.onError) await opts.onError(error, request);
          else logger.warn("Background session commit failed", { error });
        },
      });
    } catch (error) {
      if (error instanceof SessionError && opts.onError) return await opts.onError(error, request);
      throw error;
    } finally {
      if (!backgroundOwnsRelease) await release();
    }
  };
}
