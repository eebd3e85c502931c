// The SvelteKit recipe (README), as a user writes it in src/hooks.server.ts, with the session on
// `event.locals`. SvelteKit is not installed: the types below are the parts of
// `@sveltejs/kit`'s `Handle` and `RequestEvent` the recipe uses, with the documented shapes:
//   type Handle = (input: { event: RequestEvent; resolve(event: RequestEvent, opts?): MaybePromise<Response> }) => MaybePromise<Response>
//   interface RequestEvent { request: Request; url: URL; locals: App.Locals; params; platform: Readonly<App.Platform> | undefined; … }
// (https://svelte.dev/docs/kit/hooks#Server-hooks-handle, https://svelte.dev/docs/kit/@sveltejs-kit#RequestEvent)
import type { RequestSession, Sessions } from "../../mod.ts";

export type Data = { user: string; visits: number };

/** `App.Locals` in src/app.d.ts. */
export interface Locals {
  session: RequestSession<Data>;
}

/** `App.Platform` with adapter-cloudflare: the Worker's ExecutionContext as `ctx`. */
export interface Platform {
  ctx?: { waitUntil(promise: Promise<unknown>): void };
}

export interface RequestEvent {
  request: Request;
  url: URL;
  locals: Locals;
  params: Record<string, string>;
  platform: Readonly<Platform> | undefined;
}

export type Handle = (
  input: { event: RequestEvent; resolve: (event: RequestEvent) => Promise<Response> },
) => Promise<Response>;

// ---- the recipe: src/hooks.server.ts ----
export function makeHandle(sessions: Sessions<Data>): Handle {
  return ({ event, resolve }) => {
    const ctx = event.platform?.ctx;
    return sessions.handle(event.request, (session) => {
      event.locals.session = session;
      return resolve(event);
    }, ctx ? { waitUntil: (p) => ctx.waitUntil(p) } : undefined);
  };
}
