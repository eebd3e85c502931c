// The README's framework recipes on createSessions, each called exactly as its framework calls
// it: SvelteKit's `handle({ event, resolve })` with the session on `event.locals`, Astro's
// middleware `onRequest(context, next)` with the session on `context.locals`, and Next.js route
// handlers `GET(request)`. No framework is installed: each runner below emulates its documented
// contract (a Request in, the routes behind `resolve(event)`/`next()`, a Response out, thrown
// errors turned into a 500 page by the framework). The recipes are in tests/frameworks/.
// Against PostgreSQL through a pg.Pool whose `query` calls are counted.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type PostgresStore } from "../mod.ts";
import { generateId, handleOf } from "../src/id.ts";
import { createSessions, type Sessions } from "../mod.ts";
import { dbSkip, randomSchema } from "./_db.ts";
import { type Fixture, transports } from "./_transports.ts";
import * as astro from "./frameworks/astro.ts";
import * as next from "./frameworks/next.ts";
import * as svelte from "./frameworks/sveltekit.ts";

type Data = { user: string; visits: number };
type Send = (method: string, path: string, cookie?: string) => Promise<Response>;

const SECRET = "frameworks-test-secret-of-32-characters!";
const COOKIE = "__Host-session";
const ORIGIN = "https://app.example";
const pgPool = transports.find((t) => t.name === "pg.Pool")!;

/** SvelteKit's `redirect()` throws this; `resolve()` turns it into a 3xx response. */
class Redirect {
  constructor(readonly status: 303 | 307, readonly location: string) {}
}

/**
 * A SvelteKit server: each request becomes a RequestEvent with fresh `locals`, and `resolve`
 * runs the matching +server.ts endpoint. A thrown `redirect()` becomes its response; any other
 * thrown error goes to handleError and becomes a 500 response, as SvelteKit does; a missing
 * route is a 404.
 */
function svelteKitServer(
  handle: svelte.Handle,
  endpoints: Record<string, (event: svelte.RequestEvent) => Promise<Response>>,
  platform?: svelte.Platform,
): Send {
  return (method, path, cookie) => {
    const request = new Request(ORIGIN + path, { method, headers: cookie ? { cookie } : {} });
    const event: svelte.RequestEvent = {
      request,
      url: new URL(request.url),
      locals: {} as svelte.Locals,
      params: {},
      platform,
    };
    return handle({
      event,
      resolve: async (ev) => {
        const endpoint = endpoints[`${ev.request.method} ${ev.url.pathname}`];
        if (!endpoint) return new Response("Not Found", { status: 404 });
        try {
          return await endpoint(ev);
        } catch (error) {
          if (error instanceof Redirect) {
            return new Response(null, { status: error.status, headers: { location: error.location } });
          }
          return new Response("Internal Error", { status: 500 });
        }
      },
    });
  };
}

/**
 * An Astro server: each request gets an APIContext with fresh `locals`; `next()` renders the
 * matching page or endpoint. An error thrown by the page rejects `next()` and, once it leaves the
 * middleware, Astro answers with its 500 page.
 */
function astroServer(
  onRequest: astro.MiddlewareHandler,
  pages: Record<string, (context: astro.APIContext) => Promise<Response>>,
): Send {
  return async (method, path, cookie) => {
    const request = new Request(ORIGIN + path, { method, headers: cookie ? { cookie } : {} });
    const context: astro.APIContext = {
      request,
      url: new URL(request.url),
      locals: {} as astro.Locals,
      params: {},
      redirect: (location, status = 302) => new Response(null, { status, headers: { location } }),
    };
    const render = async (): Promise<Response> => {
      const page = pages[`${request.method} ${context.url.pathname}`];
      return page ? await page(context) : new Response(null, { status: 404 });
    };
    try {
      const response = await onRequest(context, render);
      if (!(response instanceof Response)) throw new Error("the middleware returned no Response");
      return response;
    } catch {
      return new Response("Internal Error", { status: 500 });
    }
  };
}

/** Next.js: the route file's exported function gets the Request; a throw becomes a 500. */
function nextServer(routes: Record<string, (request: Request) => Promise<Response>>): Send {
  return async (method, path, cookie) => {
    const request = new Request(ORIGIN + path, { method, headers: cookie ? { cookie } : {} });
    const route = routes[`${method} ${new URL(request.url).pathname}`];
    if (!route) return new Response(null, { status: 404 });
    try {
      return await route(request);
    } catch {
      return new Response("Internal Error", { status: 500 });
    }
  };
}

function sessionCookie(res: Response): string | undefined {
  const set = res.headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}=`));
  return set?.slice(0, set.indexOf(";"));
}

const tokenOf = (cookie: string): string => cookie.slice(cookie.indexOf("=") + 1).split(".")[0]!;

describe("framework recipes on createSessions", { skip: dbSkip }, () => {
  let h: Fixture;
  let sessions: Sessions<Data>;
  const rows = async (): Promise<string[]> =>
    (await h.sql(`select session_key from ${h.table}`)).map((r) => String(r.session_key));

  before(async () => {
    h = await pgPool.setup(randomSchema("frameworks"));
    sessions = createSessions<Data>({ store: h.store() as unknown as PostgresStore<Data>, secrets: [SECRET] });
  });
  after(async () => {
    await h?.close();
  });

  /** The same user journey through any of the recipes. */
  async function journey(send: Send): Promise<void> {
    await h.sql(`delete from ${h.table}`);
    // Two visits: the first creates the session, the second reads it through the cookie.
    const first = await send("GET", "/visits");
    assert.deepEqual(await first.json(), { visits: 1, user: null });
    let cookie = sessionCookie(first)!;
    assert.ok(cookie, first.headers.getSetCookie().join(" | "));
    assert.equal(first.headers.get("cache-control"), "private, no-store");
    assert.deepEqual(await rows(), [await handleOf(tokenOf(cookie))], "one row, keyed by the token's SHA-256");
    await h.resetCount();
    const second = await send("GET", "/visits", cookie);
    assert.deepEqual(await second.json(), { visits: 2, user: null });
    assert.equal(await h.statements(), 2, "a SELECT and an UPDATE");
    assert.equal(sessionCookie(second), undefined, "same id, no new cookie");

    // Sign-in regenerates: a new id, the data kept, the old row gone.
    const signIn = await send("POST", "/sign-in?user=ada", cookie);
    assert.ok(signIn.status < 400, `sign-in: ${signIn.status}`);
    await signIn.body?.cancel();
    const fresh = sessionCookie(signIn)!;
    assert.ok(fresh);
    assert.notEqual(tokenOf(fresh), tokenOf(cookie));
    assert.deepEqual(await rows(), [await handleOf(tokenOf(fresh))]);
    assert.deepEqual(
      await (await send("GET", "/visits", cookie)).json(),
      { visits: 1, user: null },
      "the old cookie is anonymous",
    );
    cookie = fresh;
    assert.deepEqual(await (await send("GET", "/visits", cookie)).json(), { visits: 3, user: "ada" });

    // A route that throws: the framework answers 500 and nothing it changed is stored.
    const boom = await send("POST", "/boom", cookie);
    assert.equal(boom.status, 500);
    await boom.body?.cancel();
    assert.equal(sessionCookie(boom), undefined);
    assert.deepEqual(await (await send("GET", "/visits", cookie)).json(), { visits: 4, user: "ada" });

    // An id the server never issued: a new id, no row for the planted one.
    const token = generateId();
    const strange = await send("GET", "/visits", `${COOKIE}=${token}`);
    assert.deepEqual(await strange.json(), { visits: 1, user: null });
    assert.notEqual(tokenOf(sessionCookie(strange)!), token);
    assert.equal((await rows()).includes(await handleOf(token)), false);

    // Sign-out: the row deleted, the cookie cleared.
    const out = await send("POST", "/sign-out", cookie);
    assert.equal(out.status, 204);
    assert.match(out.headers.getSetCookie().find((c) => c.startsWith(COOKIE)) ?? "", /^__Host-session=; Max-Age=0/);
    assert.equal((await rows()).includes(await handleOf(tokenOf(cookie))), false);
  }

  test("SvelteKit handle({ event, resolve }): the session on event.locals through visits, sign-in, an error, sign-out", async () => {
    const visits = async ({ locals }: svelte.RequestEvent): Promise<Response> => {
      const visits = ((await locals.session.get("visits")) ?? 0) + 1;
      locals.session.set("visits", visits);
      return Response.json({ visits, user: (await locals.session.get("user")) ?? null });
    };
    const send = svelteKitServer(svelte.makeHandle(sessions), {
      "GET /visits": visits,
      // redirect(303, "/") throws in SvelteKit; the session is committed all the same.
      "POST /sign-in": ({ locals, url }) => {
        locals.session.regenerate();
        locals.session.set("user", url.searchParams.get("user") ?? "anonymous");
        throw new Redirect(303, "/");
      },
      "POST /sign-out": ({ locals }) => {
        locals.session.destroy();
        return Promise.resolve(new Response(null, { status: 204 }));
      },
      "POST /boom": ({ locals }) => {
        locals.session.set("user", "mallory");
        return Promise.reject(new Error("boom"));
      },
    });
    await journey(send);
  });

  test("SvelteKit on Cloudflare: an update is handed to platform.ctx.waitUntil", async () => {
    const pending: Promise<unknown>[] = [];
    const platform: svelte.Platform = { ctx: { waitUntil: (p) => void pending.push(p) } };
    const send = svelteKitServer(svelte.makeHandle(sessions), {
      "GET /visits": async ({ locals }) => {
        const visits = ((await locals.session.get("visits")) ?? 0) + 1;
        locals.session.set("visits", visits);
        return Response.json({ visits });
      },
    }, platform);
    const cookie = sessionCookie(await send("GET", "/visits"))!;
    pending.length = 0;
    assert.deepEqual(await (await send("GET", "/visits", cookie)).json(), { visits: 2 });
    assert.equal(pending.length, 1);
    await Promise.all(pending);
    assert.deepEqual(await (await send("GET", "/visits", cookie)).json(), { visits: 3 });
  });

  test("Astro onRequest(context, next): the session on context.locals through visits, sign-in, an error, sign-out", async () => {
    const send = astroServer(astro.makeOnRequest(sessions), {
      "GET /visits": async ({ locals }) => {
        const visits = ((await locals.session.get("visits")) ?? 0) + 1;
        locals.session.set("visits", visits);
        return Response.json({ visits, user: (await locals.session.get("user")) ?? null });
      },
      "POST /sign-in": ({ locals, url, redirect }) => {
        locals.session.regenerate();
        locals.session.set("user", url.searchParams.get("user") ?? "anonymous");
        return Promise.resolve(redirect("/", 303));
      },
      "POST /sign-out": ({ locals }) => {
        locals.session.destroy();
        return Promise.resolve(new Response(null, { status: 204 }));
      },
      "POST /boom": ({ locals }) => {
        locals.session.set("user", "mallory");
        return Promise.reject(new Error("boom"));
      },
    });
    await journey(send);
  });

  test("Astro: a page that signs out and then throws still deletes the row", async () => {
    const send = astroServer(astro.makeOnRequest(sessions), {
      "POST /sign-in": ({ locals }) => {
        locals.session.set("user", "ada");
        return Promise.resolve(new Response("in"));
      },
      "POST /sign-out-then-throw": ({ locals }) => {
        locals.session.destroy();
        return Promise.reject(new Error("after sign-out"));
      },
    });
    const cookie = sessionCookie(await send("POST", "/sign-in"))!;
    assert.ok((await rows()).includes(await handleOf(tokenOf(cookie))));
    const res = await send("POST", "/sign-out-then-throw", cookie);
    assert.equal(res.status, 500);
    assert.equal((await rows()).includes(await handleOf(tokenOf(cookie))), false);
  });

  test("Next.js route handlers GET(request) / POST(request): visits, sign-in, an error, sign-out", async () => {
    const routes = next.makeRoutes(sessions);
    const send = nextServer({
      "GET /visits": routes.GET,
      "POST /sign-in": routes.signIn,
      "POST /sign-out": routes.signOut,
      "POST /boom": async (request) => {
        const session = await sessions.open(request);
        session.set("user", "mallory");
        throw new Error("boom");
      },
    });
    await journey(send);
  });
});
