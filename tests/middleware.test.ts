// withSession on every transport: statements per request (the table), cookies and headers,
// failure handling, and the races a session library must survive.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { PostgresStore, type Session, SessionError, withSession, type WithSessionOptions } from "../mod.ts";
import { handleOf } from "../src/id.ts";
import { dbSkip, randomSchema } from "./_db.ts";
import { type Fixture, transports } from "./_transports.ts";

const SECRET = "s".repeat(32);
const OLD_SECRET = "o".repeat(32);

type Handler = (req: Request, session: Session) => Response | Promise<Response>;

/** A tiny app: the path says what the handler does with the session. */
const app: Handler = async (req, session) => {
  const { pathname, searchParams } = new URL(req.url);
  switch (pathname) {
    case "/unused":
      return new Response("ok");
    case "/read":
      return Response.json({ user: (await session.get("user")) ?? null, n: (await session.get("n")) ?? null });
    case "/login":
      session.regenerate();
      session.set("user", searchParams.get("user") ?? "ada");
      return new Response("in");
    case "/set":
      session.set(searchParams.get("k") ?? "n", Number(searchParams.get("v") ?? 1));
      return new Response("set");
    case "/regenerate":
      session.regenerate();
      return new Response("regenerated");
    case "/logout":
      session.destroy();
      return new Response("out");
    case "/flash":
      session.flash("notice", searchParams.get("m") ?? "hi");
      return new Response("flashed");
    case "/take":
      return Response.json({ notice: (await session.getFlash("notice")) ?? null });
  }
  return new Response("not found", { status: 404 });
};

function cookieOf(res: Response): string | null {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("__Host-session="));
  return set ? set.slice(0, set.indexOf(";")) : null;
}

function tokenOf(cookie: string): string {
  return cookie.slice(cookie.indexOf("=") + 1).split(".")[0]!;
}

for (const transport of transports) {
  describe(`withSession over ${transport.name}`, { skip: transport.needsServer ? dbSkip : undefined }, () => {
    let h: Fixture;
    let store: PostgresStore;
    let handle: (
      path: string,
      cookie?: string | null,
      options?: Partial<WithSessionOptions>,
    ) => Promise<{ res: Response; statements: number }>;

    before(async () => {
      h = await transport.setup(randomSchema("mw"));
      store = h.store();
      handle = async (path, cookie, options = {}) => {
        const wrapped = withSession(app, { store, secrets: [SECRET], ...options });
        await h.resetCount();
        const res = await wrapped(new Request(`https://app.test${path}`, { headers: cookie ? { cookie } : {} }));
        await res.arrayBuffer().catch(() => undefined);
        return { res, statements: await h.statements() };
      };
    });
    after(() => h?.close());

    async function signedIn(): Promise<string> {
      const { res } = await handle("/set?k=n&v=1");
      const cookie = cookieOf(res);
      assert.ok(cookie);
      return cookie;
    }

    async function rows(token: string): Promise<number> {
      const found = await h.sql(`SELECT 1 FROM ${h.table} WHERE session_key = $1`, [await handleOf(token)]);
      return found.length;
    }

    test("no cookie, session unused or only read: 0 statements, no Set-Cookie", async () => {
      for (const path of ["/unused", "/read"]) {
        const { res, statements } = await handle(path);
        assert.equal(statements, 0, path);
        assert.equal(res.headers.get("set-cookie"), null, path);
      }
    });

    test("no cookie, handler sets a value: 1 statement and a secure cookie", async () => {
      const { res, statements } = await handle("/set?v=5");
      assert.equal(statements, 1);
      const header = res.headers.getSetCookie()[0]!;
      assert.match(
        header,
        /^__Host-session=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
      );
      assert.equal(res.headers.get("cache-control"), "private, no-store");
      assert.match(res.headers.get("vary") ?? "", /Cookie/);
      assert.equal(await rows(tokenOf(cookieOf(res)!)), 1);
    });

    test("valid cookie, session unused: 0 statements", async () => {
      const cookie = await signedIn();
      const { res, statements } = await handle("/unused", cookie);
      assert.equal(statements, 0);
      assert.equal(res.headers.get("set-cookie"), null);
    });

    test("valid cookie, handler reads: 1 statement, no Set-Cookie while the expiry is fresh", async () => {
      const cookie = await signedIn();
      const { res, statements } = await handle("/read", cookie);
      assert.equal(statements, 1);
      assert.deepEqual(
        await (await withSession(app, { store, secrets: [SECRET] })(
          new Request("https://app.test/read", { headers: { cookie } }),
        )).json(),
        { user: null, n: 1 },
      );
      assert.equal(res.headers.get("set-cookie"), null);
      assert.match(res.headers.get("vary") ?? "", /Cookie/);
    });

    test("valid cookie, handler reads a stale session: 1 SELECT, then 1 UPDATE after the handler, no Set-Cookie", async () => {
      const cookie = await signedIn();
      // Age the stored expiry by two hours: past touchAfter (1 h by default).
      await h.sql(`UPDATE ${h.table} SET session_expiry = session_expiry - interval '2 hours' WHERE session_key = $1`, [
        await handleOf(tokenOf(cookie)),
      ]);
      const before = await h.sql(`SELECT session_expiry FROM ${h.table} WHERE session_key = $1`, [
        await handleOf(tokenOf(cookie)),
      ]);
      const { res, statements } = await handle("/read", cookie);
      assert.equal(statements, 2);
      // The cookie's lifetime was fixed when it was issued (the absolute deadline): a touch sends none.
      assert.deepEqual(res.headers.getSetCookie(), []);
      const after = await h.sql(`SELECT session_expiry FROM ${h.table} WHERE session_key = $1`, [
        await handleOf(tokenOf(cookie)),
      ]);
      assert.ok(
        (after[0]!.session_expiry as Date).getTime() > (before[0]!.session_expiry as Date).getTime(),
        "the stored expiry moved",
      );
    });

    test("valid cookie, handler modifies: 2 statements, no Set-Cookie while fresh", async () => {
      const cookie = await signedIn();
      const { res, statements } = await handle("/set?k=n&v=2", cookie);
      assert.equal(statements, 2);
      assert.equal(res.headers.get("set-cookie"), null);
      const read = await withSession(app, { store, secrets: [SECRET] })(
        new Request("https://app.test/read", { headers: { cookie } }),
      );
      assert.deepEqual(await read.json(), { user: null, n: 2 });
    });

    test("valid cookie, destroy() without reading: 1 statement, row deleted, cookie cleared", async () => {
      const cookie = await signedIn();
      const { res, statements } = await handle("/logout", cookie);
      assert.equal(statements, 1);
      assert.equal(res.headers.getSetCookie()[0], "__Host-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax");
      assert.equal(await rows(tokenOf(cookie)), 0);
      const replay = await handle("/read", cookie);
      assert.equal(replay.res.headers.get("set-cookie"), null, "replaying the old cookie gives an anonymous session");
    });

    test("valid cookie, regenerate(): at most 2 statements, new id, data kept, old row gone", async () => {
      const cookie = await signedIn();
      const { res, statements } = await handle("/regenerate", cookie);
      assert.ok(statements <= 2, `${statements} statements`);
      const next = cookieOf(res);
      assert.ok(next && next !== cookie);
      assert.equal(await rows(tokenOf(cookie)), 0);
      assert.equal(await rows(tokenOf(next)), 1);
      const read = await withSession(app, { store, secrets: [SECRET] })(
        new Request("https://app.test/read", { headers: { cookie: next } }),
      );
      assert.deepEqual(await read.json(), { user: null, n: 1 });
    });

    test("login regenerates and writes in 2 statements", async () => {
      const cookie = await signedIn();
      const { res, statements } = await handle("/login?user=grace", cookie);
      assert.equal(statements, 2);
      assert.equal(await rows(tokenOf(cookie)), 0);
      assert.equal(await rows(tokenOf(cookieOf(res)!)), 1);
    });

    test("malformed or badly signed cookies: 0 statements, a fresh session", async () => {
      const valid = await signedIn();
      const forged = `${valid.slice(0, -3)}AAA`;
      for (
        const cookie of [
          forged,
          "__Host-session=%E0%A4%A",
          "__Host-session=" + "a".repeat(8000),
          `__Host-session=${tokenOf(valid)}`,
          "__Host-session=\u00e9",
        ]
      ) {
        const { res, statements } = await handle("/read", cookie);
        assert.equal(statements, 0, cookie.slice(0, 40));
        assert.equal(res.status, 200);
        assert.deepEqual(
          await (await withSession(app, { store, secrets: [SECRET] })(
            new Request("https://app.test/read", { headers: { cookie } }),
          )).json(),
          { user: null, n: null },
        );
      }
      const write = await handle("/set", forged);
      assert.equal(write.statements, 1);
      assert.notEqual(tokenOf(cookieOf(write.res)!), tokenOf(valid));
    });

    test("unknown but well-signed id: no row is ever created for it", async () => {
      const victim = await signedIn();
      await handle("/logout", victim);
      const { res } = await handle("/set", victim);
      const issued = cookieOf(res)!;
      assert.notEqual(tokenOf(issued), tokenOf(victim));
      assert.equal(await rows(tokenOf(victim)), 0);
    });

    test("flash messages are read once", async () => {
      const cookie = cookieOf((await handle("/flash?m=welcome")).res)!;
      const first = await withSession(app, { store, secrets: [SECRET] })(
        new Request("https://app.test/take", { headers: { cookie } }),
      );
      assert.deepEqual(await first.json(), { notice: "welcome" });
      const second = await withSession(app, { store, secrets: [SECRET] })(
        new Request("https://app.test/take", { headers: { cookie } }),
      );
      assert.deepEqual(await second.json(), { notice: null });
    });

    test("a slow request finishing after logout does not bring the session back", async () => {
      const cookie = await signedIn();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const slow = withSession(async (_req, session) => {
        await session.get("n");
        await gate;
        session.set("n", 99);
        return new Response("slow");
      }, { store, secrets: [SECRET] })(new Request("https://app.test/", { headers: { cookie } }));
      await new Promise((r) => setTimeout(r, 50));
      await handle("/logout", cookie);
      release();
      const res = await slow;
      assert.equal(res.headers.get("set-cookie"), null);
      assert.equal(await rows(tokenOf(cookie)), 0);
    });

    test("concurrent requests changing different keys lose neither", async () => {
      const cookie = await signedIn();
      await Promise.all([
        handle("/set?k=a&v=1", cookie),
        handle("/set?k=b&v=2", cookie),
        handle("/set?k=c&v=3", cookie),
      ]);
      const session = await store.read(tokenOf(cookie));
      assert.deepEqual(Object.fromEntries((await session!.entries()).sort()), { a: 1, b: 2, c: 3, n: 1 });
    });
  });
}

describe("withSession behaviour (pg.Pool)", { skip: dbSkip }, () => {
  let h: Fixture;
  let store: PostgresStore;
  before(async () => {
    h = await transports.find((t) => t.name === "pg.Pool")!.setup(randomSchema("mwb"));
    store = h.store();
  });
  after(() => h?.close());

  const run = (
    handler: Handler,
    init: RequestInit = {},
    options: Partial<WithSessionOptions> = {},
  ): Promise<Response> =>
    withSession(handler, { store, secrets: [SECRET], ...options })(new Request("https://app.test/", init));

  test("a throwing handler persists nothing and its error propagates", async () => {
    await h.resetCount();
    await assert.rejects(
      run((_req, s) => {
        s.set("x", 1);
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.equal(await h.statements(), 0);
  });

  test("a 5xx answer persists nothing unless commitOnServerError", async () => {
    await h.resetCount();
    const res = await run((_req, s) => (s.set("x", 1), new Response("no", { status: 503 })));
    assert.equal(res.headers.get("set-cookie"), null);
    assert.equal(await h.statements(), 0);
    const saved = await run((_req, s) => (s.set("x", 1), new Response("no", { status: 503 })), {}, {
      commitOnServerError: true,
    });
    assert.ok(saved.headers.get("set-cookie"));
  });

  test("immutable redirects, streaming bodies and the handler's own cookies are kept", async () => {
    const redirect = await run((_req, s) => (s.set("x", 1), Response.redirect("https://app.test/next", 303)));
    assert.equal(redirect.status, 303);
    assert.equal(redirect.headers.get("location"), "https://app.test/next");
    assert.ok(cookieOf(redirect));

    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("chunk1,"));
        c.enqueue(new TextEncoder().encode("chunk2"));
        c.close();
      },
    });
    const streamed = await run((_req, s) => {
      s.set("x", 1);
      const res = new Response(stream, {
        headers: { "set-cookie": "theme=dark; Path=/", "cache-control": "no-cache" },
      });
      return res;
    });
    assert.equal(await streamed.text(), "chunk1,chunk2");
    assert.equal(streamed.headers.getSetCookie().length, 2);
    assert.ok(streamed.headers.getSetCookie().includes("theme=dark; Path=/"));
    assert.equal(
      streamed.headers.get("cache-control"),
      "private, no-cache",
      "the handler's Cache-Control, made private",
    );
  });

  test("rotated secrets: old signatures verify, new cookies use the first secret", async () => {
    const old = cookieOf(await run((_req, s) => (s.set("x", 1), new Response("")), {}, { secrets: [OLD_SECRET] }))!;
    const read = await run(async (_req, s) => Response.json(await s.get("x")), { headers: { cookie: old } }, {
      secrets: [SECRET, OLD_SECRET],
    });
    assert.equal(await read.json(), 1);
    const renewed = cookieOf(
      await run((_req, s) => (s.regenerate(), new Response("")), { headers: { cookie: old } }, {
        secrets: [SECRET, OLD_SECRET],
      }),
    )!;
    const withNewOnly = await run(
      async (_req, s) => Response.json(await s.get("x")),
      { headers: { cookie: renewed } },
      { secrets: [SECRET] },
    );
    assert.equal(await withNewOnly.json(), 1);
  });

  test("duplicate cookies: the first well-formed and well-signed one wins", async () => {
    const good = cookieOf(await run((_req, s) => (s.set("x", "good"), new Response(""))))!;
    const res = await run(async (_req, s) => Response.json(await s.get("x")), {
      headers: { cookie: `__Host-session=junk; ${good}; __Host-session=other` },
    });
    assert.equal(await res.json(), "good");
  });

  test("the id can travel in a header; never in the URL", async () => {
    const first = await run((_req, s) => (s.set("x", "h"), new Response("")), {}, { header: "x-session" });
    const value = first.headers.get("x-session");
    assert.ok(value);
    const viaHeader = await run(
      async (_req, s) => Response.json(await s.get("x")),
      { headers: { "x-session": value } },
      { header: "x-session" },
    );
    assert.equal(await viaHeader.json(), "h");
    const viaUrl = await withSession(async (_req, s) => Response.json((await s.get("x")) ?? null), {
      store,
      secrets: [SECRET],
    })(
      new Request(`https://app.test/?session=${value}&__Host-session=${value}`),
    );
    assert.equal(await viaUrl.json(), null);
  });

  test("options can be a function of the request and the platform's extra arguments, which reach the handler", async () => {
    const env = { SECRET };
    const handler = withSession<Record<string, unknown>, [typeof env, string]>(
      (_req, s, e, extra) => (s.set("x", 1), Response.json({ e: e.SECRET.length, extra })),
      async (_req, e) => ({ store, secrets: [e.SECRET] }),
    );
    const res = await handler(new Request("https://app.test/"), env, "ctx");
    assert.deepEqual(await res.json(), { e: 32, extra: "ctx" });
  });

  test("waitUntil: an update runs after the response, release after the commit", async () => {
    const first = await run((_req, s) => (s.set("x", "first"), new Response("")));
    const cookie = cookieOf(first)!;
    const pending: Promise<unknown>[] = [];
    const events: string[] = [];
    const res = await run(async (_req, s) => (s.set("x", (await s.get("x")) + ", later"), new Response("")), {
      headers: { cookie },
    }, {
      waitUntil: (p) => pending.push(p),
      release: () => events.push("released"),
    });
    assert.equal(res.headers.get("set-cookie"), null);
    assert.equal(pending.length, 1, "the update went to the background");
    assert.equal(events.length, 0, "not released before the commit");
    await Promise.all(pending);
    assert.deepEqual(events, ["released"]);
    const session = await store.read(tokenOf(cookie));
    assert.equal(await session?.get("x"), "first, later");
  });

  test("waitUntil: a new session, a regenerate and a destroy are stored before the response", async () => {
    const pending: Promise<unknown>[] = [];
    const waitUntil = (p: Promise<unknown>) => void pending.push(p);
    const created = await run((_req, s) => (s.set("x", 1), new Response("")), {}, { waitUntil });
    const cookie = cookieOf(created)!;
    assert.equal(pending.length, 0);
    assert.ok(await store.exists(tokenOf(cookie)), "the row exists when the response is returned");
    const moved = await run((_req, s) => (s.regenerate(), new Response("")), { headers: { cookie } }, { waitUntil });
    const next = cookieOf(moved)!;
    assert.equal(pending.length, 0);
    assert.ok(await store.exists(tokenOf(next)));
    assert.equal(await store.exists(tokenOf(cookie)), false);
    await run((_req, s) => (s.destroy(), new Response("")), { headers: { cookie: next } }, { waitUntil });
    assert.equal(pending.length, 0);
    assert.equal(await store.exists(tokenOf(next)), false);
  });

  test("a database failure is a typed error that never clears the cookie or writes", async () => {
    const broken = new PostgresStore({ client: { query: () => Promise.reject(new Error("connection refused")) } });
    const cookie = cookieOf(await run((_req, s) => (s.set("x", 1), new Response(""))))!;
    await assert.rejects(
      withSession(async (_req, s) => Response.json(await s.get("x")), { store: broken, secrets: [SECRET] })(
        new Request("https://app.test/", { headers: { cookie } }),
      ),
      (e: unknown) =>
        e instanceof SessionError && e.code === "DATABASE_ERROR" && (e.cause as Error).message === "connection refused",
    );
    const handled = await withSession((_req, s) => (s.set("x", 2), new Response("")), {
      store: broken,
      secrets: [SECRET],
      onError: (e) => new Response(e.code, { status: 503 }),
    })(new Request("https://app.test/", { headers: { cookie } }));
    assert.equal(handled.status, 503);
    assert.equal(handled.headers.get("set-cookie"), null);
    assert.equal(await (await store.read(tokenOf(cookie)))?.get("x"), 1, "stored data untouched");
  });

  test("the database dropping between read and write: typed error, cookie and data untouched, next request fine", async () => {
    const cookie = cookieOf(await run((_req, s) => (s.set("x", 1), new Response(""))))!;
    const real = h.store();
    let calls = 0;
    // Reads go through; the write (the second statement) fails as if the connection dropped.
    const flaky = new PostgresStore({
      table: h.table,
      client: {
        query: async (text: string, params?: unknown[]) => {
          if (++calls === 2) throw Object.assign(new Error("Connection terminated unexpectedly"), { code: "57P01" });
          return { rows: await h.sql(text, params) };
        },
      },
    });
    await assert.rejects(
      withSession(async (_req, s) => (s.set("x", (await s.get("x") as number) + 1), new Response("")), {
        store: flaky,
        secrets: [SECRET],
      })(
        new Request("https://app.test/", { headers: { cookie } }),
      ),
      (e: unknown) =>
        e instanceof SessionError && e.code === "DATABASE_ERROR" && (e.cause as { code?: string }).code === "57P01",
    );
    assert.equal(await (await real.read(tokenOf(cookie)))?.get("x"), 1, "no partial write");
    const next = await withSession(
      async (_req, s) => (s.set("x", (await s.get("x") as number) + 1), new Response("")),
      { store: real, secrets: [SECRET] },
    )(
      new Request("https://app.test/", { headers: { cookie } }),
    );
    assert.equal(next.headers.get("set-cookie"), null);
    assert.equal(await (await real.read(tokenOf(cookie)))?.get("x"), 2, "the next request succeeds");
  });

  test("cookie options: secure auto over http, custom attributes", async () => {
    const res = await withSession((_req, s) => (s.set("x", 1), new Response("")), {
      store,
      cookie: { secure: "auto", sameSite: "Strict", path: "/app" },
    })(new Request("http://app.test/app"));
    assert.match(
      res.headers.get("set-cookie")!,
      /^session=[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/app; HttpOnly; SameSite=Strict$/,
    );
  });

  test("cookie options a browser would refuse fail when withSession is called, not per request", () => {
    const handler = () => new Response("");
    assert.throws(() => withSession(handler, { store, cookie: { secure: "auto", partitioned: true } }), TypeError);
    assert.throws(() => withSession(handler, { store, cookie: { name: "__Host-x", path: "/app" } }), TypeError);
    assert.throws(() => withSession(handler, { store, cookie: { secure: false, sameSite: "None" } }), TypeError);
    assert.throws(() => withSession(handler, { store, secrets: ["short"] }), RangeError);
  });

  test("an options function's unusable output is SessionError CONFIG, which onError sees", async () => {
    let seen: SessionError | null = null;
    const handler = withSession(() => new Response(""), () => ({
      store,
      secrets: [""],
      onError: (error: SessionError) => ((seen = error), new Response("config", { status: 500 })),
    }));
    const res = await handler(new Request("https://app.test/"));
    assert.equal(res.status, 500);
    assert.equal((seen as SessionError | null)?.code, "CONFIG");
  });

  test("a request outside the cookie's path stores nothing and sets no cookie", async () => {
    await h.resetCount();
    const res = await withSession((_req, s) => (s.set("x", 1), new Response("")), { store, cookie: { path: "/app" } })(
      new Request("https://app.test/other"),
    );
    assert.equal(res.headers.get("set-cookie"), null);
    assert.equal(await h.statements(), 0);
  });
});
