// pgsession/hono on Node and Deno: a Hono app built once, driven with app.request() and through a
// real @hono/node-server server, against PostgreSQL through a pg.Pool whose `query` calls are
// counted. Under Node also on workerd (Miniflare): a Worker that builds its Hono app once at
// module scope (tests/runtimes/hono_worker.ts) runs the shared runtime scenario
// (tests/runtimes/scenario.ts) over Neon's HTTP transport via the support server.
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { serve, type ServerType } from "@hono/node-server";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { setCookie } from "hono/cookie";
import { HTTPException } from "hono/http-exception";
import { type PostgresStore, SessionError } from "../mod.ts";
import { generateId, handleOf } from "../src/id.ts";
import { type SessionEnv, sessionMiddleware } from "../src/hono.ts";
import pg from "pg";
import { dbSkip, randomSchema } from "./_db.ts";
import { databaseUrl, startSupportServer, type SupportServer } from "./support/harness.ts";
import { bundle } from "./runtimes/bundle.ts";
import { runScenario } from "./runtimes/scenario.ts";
import { runSnapshotScenario } from "./runtimes/snapshot_scenario.ts";
import { type Fixture, transports } from "./_transports.ts";

type Data = {
  user: string;
  visits: number;
};

const SECRET = "hono-test-secret-of-at-least-32-characters";
const COOKIE = "__Host-session";
const pgPool = transports.find((t) => t.name === "pg.Pool")!;
const IN_DENO = "Deno" in globalThis;
// Workers need a compatibility date this Miniflare's workerd supports.
const COMPATIBILITY_DATE = "2025-09-01";

/** A Hono app built once: the session middleware, then the routes. */
function makeApp(middleware: MiddlewareHandler<SessionEnv<Data>>): Hono<SessionEnv<Data>> {
  const app = new Hono<SessionEnv<Data>>();
  app.use(middleware);
  return routes(app);
}

/** The routes every app in this file serves, on a Hono app whose middleware is already set. */
function routes(app: Hono<SessionEnv<Data>>): Hono<SessionEnv<Data>> {
  app.get("/health", (c) => c.text("ok"));
  app.post("/login", (c) => {
    const session = c.var.session;
    session.regenerate();
    session.set("user", c.req.query("user") ?? "ada");
    setCookie(c, "theme", "dark", { path: "/" });
    c.header("X-App", "1");
    return c.redirect("/me", 303);
  });
  app.get("/me", async (c) => {
    const session = c.get("session");
    const user: string | undefined = await session.get("user");
    // @ts-expect-error: "nope" is not a key of Data
    await session.get("nope");
    return c.json({
      user: user ?? null,
      visits: (await session.get("visits")) ?? 0,
      notice: (await session.getFlash("notice")) ?? null,
    });
  });
  app.post("/visit", async (c) => {
    const visits = ((await c.var.session.get("visits")) ?? 0) + 1;
    c.var.session.set("visits", visits);
    return c.json({ visits });
  });
  app.post("/flash", (c) => {
    c.var.session.flash("notice", "Saved");
    return c.body(null, 204);
  });
  app.post("/logout", (c) => {
    c.var.session.destroy();
    return c.body(null, 204);
  });
  app.post("/throw", (c) => {
    c.var.session.set("user", "mallory");
    throw new Error("boom");
  });
  app.post("/logout-then-throw", (c) => {
    c.var.session.destroy();
    throw new Error("after sign-out");
  });
  app.post("/forbidden", (c) => {
    c.var.session.set("user", "mallory");
    throw new HTTPException(403, { message: "forbidden" });
  });
  app.post("/proxy", (c) => {
    c.var.session.set("user", "proxied");
    // A fetch() response: immutable headers, with its own Set-Cookie and Vary.
    return fetch(new URL("/upstream", c.req.url));
  });
  app.get(
    "/upstream",
    () => new Response("upstream", { headers: { "set-cookie": "upstream=1; Path=/", vary: "Accept-Encoding" } }),
  );
  app.post("/server-error", (c) => {
    c.var.session.set("user", "mallory");
    return c.text("unavailable", 503);
  });
  app.post("/immutable", (c) => {
    c.var.session.set("user", "ada");
    // Response.redirect() has immutable headers.
    return Response.redirect("http://localhost/me", 302);
  });
  app.onError((error, c) => {
    if (error instanceof SessionError) return c.text(`session error ${error.code}`, 503);
    if (error instanceof HTTPException) return error.getResponse();
    return c.text(`error: ${error.message}`, 500);
  });
  return app;
}

function sessionCookie(res: Response): string | undefined {
  const set = res.headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}=`));
  return set?.slice(0, set.indexOf(";"));
}

function tokenOf(cookie: string): string {
  return cookie.slice(cookie.indexOf("=") + 1).split(".")[0]!;
}

describe("pgsession/hono over pg.Pool", { skip: dbSkip }, () => {
  let h: Fixture;
  let store: PostgresStore<Data>;
  let app: Hono<SessionEnv<Data>>;

  const rows = async (): Promise<string[]> =>
    (await h.sql(`select session_key from ${h.table}`)).map((r) => String(r.session_key));
  const stored = async (cookie: string): Promise<boolean> => (await rows()).includes(await handleOf(tokenOf(cookie)));
  /** One request through app.request(), with the statements it sent. */
  async function call(
    path: string,
    init: RequestInit & { cookie?: string } = {},
  ): Promise<{ res: Response; statements: number }> {
    await h.resetCount();
    const headers = new Headers(init.headers);
    if (init.cookie) headers.set("cookie", init.cookie);
    const res = await app.request(`https://app.example${path}`, { ...init, headers });
    return { res, statements: await h.statements() };
  }
  async function signIn(user = "ada"): Promise<string> {
    const { res } = await call(`/login?user=${user}`, { method: "POST" });
    return sessionCookie(res)!;
  }

  before(async () => {
    h = await pgPool.setup(randomSchema("hono"));
    store = h.store() as unknown as PostgresStore<Data>;
    // Built once; every request reuses it.
    app = makeApp(sessionMiddleware<Data>({ store, secrets: [SECRET] }));
  });
  after(async () => {
    await h?.close();
  });

  test("a route that never touches the session sends no SQL and no cookie", async () => {
    const { res, statements } = await call("/health");
    assert.equal(await res.text(), "ok");
    assert.equal(statements, 0);
    assert.deepEqual(res.headers.getSetCookie(), []);
    assert.equal(res.headers.get("vary"), null);
  });

  test("sign-in through c.redirect keeps Location, Hono's cookies and headers, and adds the session cookie", async () => {
    const { res, statements } = await call("/login?user=grace", { method: "POST" });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), "/me");
    assert.equal(res.headers.get("x-app"), "1");
    assert.equal(statements, 1, "one INSERT");
    const cookies = res.headers.getSetCookie();
    assert.ok(cookies.some((c) => c.startsWith("theme=dark")), cookies.join(" | "));
    const cookie = sessionCookie(res);
    assert.ok(cookie, cookies.join(" | "));
    assert.match(cookies.find((c) => c.startsWith(COOKIE))!, /; HttpOnly; Secure; SameSite=Lax/);
    assert.equal(res.headers.get("cache-control"), "private, no-store");
    assert.match(res.headers.get("vary") ?? "", /Cookie/);
    assert.ok(await stored(cookie!), "the row is keyed by the token's SHA-256");
  });

  test("the session carries over requests: one SELECT to read, SELECT plus UPDATE to change", async () => {
    const cookie = await signIn("lin");
    const me = await call("/me", { cookie });
    assert.deepEqual(await me.res.json(), { user: "lin", visits: 0, notice: null });
    assert.equal(me.statements, 1);
    const visit = await call("/visit", { method: "POST", cookie });
    assert.deepEqual(await visit.res.json(), { visits: 1 });
    assert.equal(visit.statements, 2);
    assert.deepEqual(await (await call("/me", { cookie })).res.json(), { user: "lin", visits: 1, notice: null });
  });

  test("a flash message is read once", async () => {
    const cookie = await signIn();
    await call("/flash", { method: "POST", cookie });
    assert.equal((await (await call("/me", { cookie })).res.json()).notice, "Saved");
    assert.equal((await (await call("/me", { cookie })).res.json()).notice, null);
  });

  test("sign-out deletes the row and clears the cookie; replaying it reads as anonymous", async () => {
    const cookie = await signIn();
    const { res } = await call("/logout", { method: "POST", cookie });
    assert.equal(res.status, 204);
    assert.match(res.headers.getSetCookie().find((c) => c.startsWith(COOKIE)) ?? "", /^__Host-session=; Max-Age=0/);
    assert.equal(await stored(cookie), false);
    assert.equal((await (await call("/me", { cookie })).res.json()).user, null);
  });

  test("a handler that throws persists nothing and its error reaches app.onError", async () => {
    const cookie = await signIn("ada");
    const { res } = await call("/throw", { method: "POST", cookie });
    assert.equal(res.status, 500);
    assert.equal(await res.text(), "error: boom");
    assert.equal(sessionCookie(res), undefined);
    assert.equal((await (await call("/me", { cookie })).res.json()).user, "ada");
    const anonymous = await call("/throw", { method: "POST" });
    assert.equal(anonymous.statements, 0, "a new session is not inserted");
  });

  test("a handler that destroys the session and then throws still deletes the row", async () => {
    const cookie = await signIn("ada");
    const { res } = await call("/logout-then-throw", { method: "POST", cookie });
    assert.equal(res.status, 500);
    assert.equal(await stored(cookie), false, "a sign-out is never lost");
  });

  test("a thrown HTTPException answered with a 4xx by app.onError persists nothing", async () => {
    const cookie = await signIn("ada");
    const { res } = await call("/forbidden", { method: "POST", cookie });
    assert.equal(res.status, 403);
    assert.equal(sessionCookie(res), undefined);
    assert.equal((await (await call("/me", { cookie })).res.json()).user, "ada");
  });

  test("a 5xx response commits nothing", async () => {
    const cookie = await signIn("ada");
    const { res } = await call("/server-error", { method: "POST", cookie });
    assert.equal(res.status, 503);
    assert.equal(sessionCookie(res), undefined);
    assert.equal((await (await call("/me", { cookie })).res.json()).user, "ada");
  });

  test("a response with immutable headers still gets the session cookie", async () => {
    const { res } = await call("/immutable", { method: "POST" });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("location"), "http://localhost/me");
    const cookie = sessionCookie(res);
    assert.ok(cookie);
    assert.ok(await stored(cookie));
  });

  test("an unknown well-formed id gets a new id and no row is created for it", async () => {
    const planted = generateId();
    const before = (await rows()).length;
    const { res } = await call("/me", { cookie: `${COOKIE}=${planted}` });
    assert.equal((await res.json()).user, null);
    assert.equal((await rows()).length, before);
    const login = await call("/login", { method: "POST", cookie: `${COOKIE}=${planted}` });
    assert.notEqual(tokenOf(sessionCookie(login.res)!), planted);
    assert.equal((await rows()).includes(await handleOf(planted)), false);
  });

  test("a SessionError from reading or from the commit reaches app.onError and sets no cookie", async () => {
    const { store: broken, close } = await h.brokenStore();
    try {
      const failing = makeApp(
        sessionMiddleware<Data>({ store: broken as unknown as PostgresStore<Data>, secrets: [SECRET] }),
      );
      const cookie = await signIn();
      const read = await failing.request("https://app.example/me", { headers: { cookie } });
      assert.equal(read.status, 503);
      assert.equal(await read.text(), "session error DATABASE_ERROR");
      const commit = await failing.request("https://app.example/login", { method: "POST" });
      assert.equal(commit.status, 503);
      assert.equal(await commit.text(), "session error DATABASE_ERROR");
      assert.equal(sessionCookie(commit), undefined);
    } finally {
      await close();
    }
  });

  test("an options function reads c.env and runs once per env object", async () => {
    type Bindings = { SESSION_SECRET: string; TABLE: string };
    let calls = 0;
    const perEnv = new Hono<{ Bindings: Bindings } & SessionEnv<Data>>();
    perEnv.use(sessionMiddleware<Data, { Bindings: Bindings }>((c: Context<{ Bindings: Bindings }>) => {
      calls++;
      return { store, secrets: [c.env.SESSION_SECRET] };
    }));
    perEnv.post("/login", (c) => {
      c.var.session.set("user", "env");
      return c.text("in");
    });
    const env: Bindings = { SESSION_SECRET: SECRET, TABLE: h.table };
    for (let i = 0; i < 3; i++) await perEnv.request("https://app.example/login", { method: "POST" }, env);
    assert.equal(calls, 1);
    const res = await perEnv.request("https://app.example/login", { method: "POST" }, { ...env });
    assert.equal(calls, 2, "a new env object gets its own sessions");
    // Signed with the secret from the bindings: the main app (same secret) reads it.
    assert.equal((await (await call("/me", { cookie: sessionCookie(res)! })).res.json()).user, "env");
  });

  test("with c.executionCtx, a plain update goes to waitUntil; an insert is committed before responding", async () => {
    const pending: Promise<unknown>[] = [];
    const executionCtx = {
      waitUntil: (p: Promise<unknown>): void => void pending.push(p),
      passThroughOnException: (): void => {},
      props: {},
    };
    const login = await app.request("https://app.example/login", { method: "POST" }, undefined, executionCtx);
    const cookie = sessionCookie(login)!;
    assert.ok(await stored(cookie), "the insert landed before the response");
    const visit = await app.request(
      "https://app.example/visit",
      { method: "POST", headers: { cookie } },
      undefined,
      executionCtx,
    );
    assert.deepEqual(await visit.json(), { visits: 1 });
    assert.equal(pending.length, 1, "the update was handed to waitUntil");
    await Promise.all(pending);
    assert.equal((await (await call("/me", { cookie })).res.json()).visits, 1);

    const inline = makeApp(sessionMiddleware<Data>({ store, secrets: [SECRET] }, { background: false }));
    pending.length = 0;
    await inline.request("https://app.example/visit", { method: "POST", headers: { cookie } }, undefined, executionCtx);
    assert.equal(pending.length, 0, "background: false commits before responding");
    assert.equal((await (await call("/me", { cookie })).res.json()).visits, 2);
  });

  test("invalid options throw when the middleware is made", () => {
    assert.throws(() => sessionMiddleware({ store, secrets: ["too short"] }));
  });

  describe("through a real @hono/node-server server", () => {
    let server: ServerType;
    let base: string;

    before(async () => {
      // Plain http: the cookie cannot be Secure, so it is named "session".
      const served = makeApp(sessionMiddleware<Data>({ store, secrets: [SECRET], cookie: { secure: false } }));
      await new Promise<void>((resolve) => {
        server = serve({ fetch: served.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
          base = `http://127.0.0.1:${info.port}`;
          resolve();
        });
      });
    });
    after(async () => {
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    });

    test("signs in, counts visits and signs out with real cookies", async () => {
      const login = await fetch(`${base}/login?user=kim`, { method: "POST", redirect: "manual" });
      assert.equal(login.status, 303);
      await login.body?.cancel();
      const set = login.headers.getSetCookie();
      assert.ok(set.some((c) => c.startsWith("theme=dark")), set.join(" | "));
      const cookie = set.find((c) => c.startsWith("session="))!.split(";")[0]!;
      const visit = await fetch(`${base}/visit`, { method: "POST", headers: { cookie } });
      assert.deepEqual(await visit.json(), { visits: 1 });
      const me = await fetch(`${base}/me`, { headers: { cookie } });
      assert.deepEqual(await me.json(), { user: "kim", visits: 1, notice: null });
      const out = await fetch(`${base}/logout`, { method: "POST", headers: { cookie } });
      assert.equal(out.status, 204);
      await out.body?.cancel();
      assert.equal((await rows()).includes(await handleOf(tokenOf(cookie))), false);
    });

    test("a proxied fetch() response keeps its own Set-Cookie and Vary and gets the session cookie", async () => {
      const res = await fetch(`${base}/proxy`, { method: "POST" });
      assert.equal(await res.text(), "upstream");
      const set = res.headers.getSetCookie();
      assert.ok(set.some((c) => c.startsWith("upstream=1")), set.join(" | "));
      const cookie = set.find((c) => c.startsWith("session="));
      assert.ok(cookie, set.join(" | "));
      assert.deepEqual((res.headers.get("vary") ?? "").split(/,\s*/).sort(), ["Accept-Encoding", "Cookie"]);
      assert.ok((await rows()).includes(await handleOf(tokenOf(cookie.split(";")[0]!))));
    });
  });
});

describe("pgsession/hono on workerd: a Worker whose Hono app is built once at module scope", {
  skip: dbSkip ?? (IN_DENO && "runs under Node only; it starts workerd itself"),
}, () => {
  let h: Fixture;
  let support: SupportServer;
  let mf: import("miniflare").Miniflare;
  let broken: { fetch(url: string, init?: RequestInit): Promise<Response> };
  let snapshotWorker: { fetch(url: string, init?: RequestInit): Promise<Response> };
  const dispatch = (url: string, init?: RequestInit): Promise<Response> =>
    mf.dispatchFetch(url, init as never) as unknown as Promise<Response>;

  before(async () => {
    h = await pgPool.setup(randomSchema("hono_worker"));
    support = await startSupportServer();
    const { Miniflare } = await import("miniflare");
    const script = await bundle("./hono_worker.ts", { format: "esm", conditions: ["workerd", "worker", "browser"] });
    const bindings = {
      SUPPORT_PORT: String(support.port),
      DATABASE_URL: databaseUrl(),
      SESSION_TABLE: h.table,
      SESSION_SECRET: SECRET,
    };
    mf = new Miniflare({
      cf: false,
      workers: [
        { name: "hono", modules: true, script, compatibilityDate: COMPATIBILITY_DATE, bindings },
        {
          name: "hono-missing-table",
          modules: true,
          script,
          compatibilityDate: COMPATIBILITY_DATE,
          bindings: { ...bindings, SESSION_TABLE: `${h.table}_missing` },
        },
        {
          name: "hono-snapshot",
          modules: true,
          script,
          compatibilityDate: COMPATIBILITY_DATE,
          bindings: { ...bindings, SNAPSHOT_MAX_AGE: "5" },
        },
      ],
    });
    await mf.ready;
    broken = (await mf.getWorker("hono-missing-table")) as unknown as typeof broken;
    snapshotWorker = (await mf.getWorker("hono-snapshot")) as unknown as typeof snapshotWorker;
  });
  after(async () => {
    await mf?.dispose();
    await support?.close();
    await h?.close();
  });

  test("signs in, reads, modifies, regenerates and signs out through real cookies, updates in waitUntil", async () => {
    await runScenario({
      base: "http://localhost",
      fetch: dispatch,
      table: h.table,
      query: h.sql,
      stats: () => support.stats(),
      reset: () => support.reset(),
      lockRow,
      signed: true,
      transport: "http",
      background: true,
    });
  });

  test("with snapshot (default __Host- cookie, touches in waitUntil): a fresh read costs 0 round trips, a change 1, a tampered snapshot 1, a due touch 0 before the response; sign-out clears it at once, elsewhere after maxAge", async () => {
    await runSnapshotScenario({
      base: "http://localhost",
      fetch: (url: string, init?: RequestInit) => snapshotWorker.fetch(url, init),
      table: h.table,
      query: h.sql,
      cookieName: "__Host-session",
      maxAge: 5,
      secret: SECRET,
      background: true,
      stats: () => support.stats(),
      reset: () => support.reset(),
      lockRow,
    });
  });

  for (const write of [false, true]) {
    test(`a late ${write ? "updating" : "read-only"} response after a sign-in in another tab leaves the new cookie alone (waitUntil, the default)`, async () => {
      const login = await dispatch("http://localhost/login?user=ada", { method: "POST" });
      await login.text();
      const set = login.headers.getSetCookie().find((c) => /^(__Host-)?session=/.test(c))!;
      const cookie = set.slice(0, set.indexOf(";"));
      // Make a touch due, so the late request has a write to run in waitUntil.
      await h.sql(`UPDATE ${h.table} SET session_expiry = session_expiry - interval '2 days' WHERE session_key = $1`, [
        await handleOf(cookie.slice(cookie.indexOf("=") + 1).split(".")[0]!),
      ]);
      // The gate: the late request waits here after reading its session, until released.
      let arrived!: () => void;
      const reached = new Promise<void>((resolve) => (arrived = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const gate = serve({
        fetch: async () => {
          arrived();
          await released;
          return new Response("go");
        },
        port: 0,
        hostname: "127.0.0.1",
      });
      try {
        await new Promise<void>((resolve) => gate.once("listening", () => resolve()));
        const port = (gate.address() as AddressInfo).port;
        const late = dispatch(`http://localhost/late?write=${write ? 1 : 0}&gate=http://127.0.0.1:${port}/`, {
          headers: { cookie },
        });
        await reached;
        const signIn = await dispatch("http://localhost/login?user=ada", { method: "POST", headers: { cookie } });
        await signIn.text();
        assert.ok(
          signIn.headers.getSetCookie().some((c) => /^(__Host-)?session=/.test(c)),
          "the sign-in set a new cookie",
        );
        release();
        const res = await late;
        await res.text();
        assert.deepEqual(
          res.headers.getSetCookie().filter((c) => /^(__Host-)?session=/.test(c)),
          [],
          "the late response sets no session cookie",
        );
      } finally {
        release();
        gate.close();
      }
    });
  }

  test("the options function ran once for all those requests (one bindings object)", async () => {
    const res = await dispatch("http://localhost/health");
    await res.text();
    assert.deepEqual(await (await dispatch("http://localhost/__builds")).json(), { builds: 1 });
  });

  test("a SessionError from the commit reaches app.onError and sets no session cookie", async () => {
    const res = await broken.fetch("http://localhost/login?user=ada", { method: "POST" });
    assert.equal(res.status, 503);
    assert.equal(await res.text(), "session error TABLE_MISSING");
    assert.deepEqual(res.headers.getSetCookie().filter((c) => c.startsWith("session=")), []);
  });
});

/** Locks a row in another transaction until the returned function is called. */
async function lockRow(qualified: string, key: string): Promise<() => Promise<void>> {
  const client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
  try {
    await client.query("BEGIN");
    const locked = await client.query(`SELECT 1 FROM ${qualified} WHERE session_key = $1 FOR UPDATE`, [key]);
    assert.equal(locked.rowCount, 1, `no row to lock in ${qualified}`);
  } catch (error) {
    await client.end();
    throw error;
  }
  return async () => {
    try {
      await client.query("ROLLBACK");
    } finally {
      await client.end();
    }
  };
}
