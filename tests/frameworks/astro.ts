// The Astro recipe (README), as a user writes it in src/middleware.ts, with the session on
// `context.locals`. Astro is not installed: the types below are the parts of `astro`'s
// `MiddlewareHandler` and `APIContext` the recipe uses, with the documented shapes:
//   type MiddlewareHandler = (context: APIContext, next: MiddlewareNext) => Promise<Response> | Response | Promise<void> | void
//   type MiddlewareNext = (rewritePayload?) => Promise<Response>
//   interface APIContext { request: Request; url: URL; locals: App.Locals; params; redirect(path, status?): Response; … }
// (https://docs.astro.build/en/reference/modules/astro-middleware/, defineMiddleware is the identity)
import type { RequestSession, Sessions } from "../../mod.ts";

export type Data = { user: string; visits: number };

/** `App.Locals` in src/env.d.ts. */
export interface Locals {
  session: RequestSession<Data>;
}

export interface APIContext {
  request: Request;
  url: URL;
  locals: Locals;
  params: Record<string, string | undefined>;
  redirect(path: string, status?: 301 | 302 | 303 | 307 | 308): Response;
}

export type MiddlewareNext = () => Promise<Response>;
export type MiddlewareHandler = (
  context: APIContext,
  next: MiddlewareNext,
) => Promise<Response> | Response | Promise<void> | void;

/** `defineMiddleware` from "astro:middleware": returns its argument, for the types. */
export const defineMiddleware = (fn: MiddlewareHandler): MiddlewareHandler => fn;

// ---- the recipe: src/middleware.ts ----
export function makeOnRequest(sessions: Sessions<Data>): MiddlewareHandler {
  // A page that throws: Astro renders its error page; only a sign-out (destroy) is still written.
  return defineMiddleware((context, next) =>
    sessions.handle(context.request, (session) => {
      context.locals.session = session;
      return next();
    })
  );
}
