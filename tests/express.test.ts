// pgsession/express with the real express 4 and 5 packages over real HTTP on loopback, and as a
// bare node:http (Connect-style) middleware: the commit lands in the head whatever sends it,
// errors reach next(err), and express-session's scenarios that apply to a server-side store.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import express5 from "express";
import express4 from "express4";
import pg from "pg";
import { PostgresStore, schemaSql, type Session, SessionError } from "../mod.ts";
import { generateId, handleOf } from "../src/id.ts";
import { sign } from "../src/_signature.ts";
import { sessionMiddleware } from "../src/express.ts";
import { adminPool, dbSkip, randomSchema } from "./_db.ts";
import { close, listen } from "./support/listen.ts";

interface Data {
  user: string;
  visits: number;
  a: number;
  b: number;
  streamed: boolean;
}

declare global {
  namespace Express {
    interface Request {
      session: Session<Data>;
    }
  }
}

const SECRET = "express-test-secret-of-at-least-32-chars";
const COOKIE = "__Host-session";
const PACKAGE_JSON = fileURLToPath(new URL("../package.json", import.meta.url));

type ExpressFactory = typeof express5;
const versions: [string, ExpressFactory][] = [["express 5", express5], ["express 4", express4 as ExpressFactory]];

/** A cookie jar for one browser: name → value, cleared by `Max-Age=0`. */
class Browser {
  readonly cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  async fetch(path: string, init: RequestInit & { extraCookie?: string } = {}): Promise<Response> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).concat(init.extraCookie ?? []).join("; ");
    const headers = new Headers(init.headers);
    if (cookie) headers.set("cookie", cookie);
    const res = await fetch(new URL(path, this.base), { ...init, headers, redirect: "manual" });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq);
      if (/;\s*Max-Age=0/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, pair!.slice(eq + 1));
    }
    return res;
  }
}

function sessionCookies(res: Response, name: string = COOKIE): string[] {
  return res.headers.getSetCookie().filter((c) => c.startsWith(`${name}=`));
}

function tokenOf(value: string): string {
  return value.split(".")[0]!;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wraps an async route so Express 4 (which ignores rejections) passes errors to next(). */
function route(
  fn: (req: express5.Request, res: express5.Response) => unknown,
): (req: express5.Request, res: express5.Response, next: express5.NextFunction) => void {
  return (req, res, next) => {
    Promise.resolve().then(() => fn(req, res)).catch(next);
  };
}

/** The app every version serves: the session middleware, routes, an error handler that records. */
function makeApp(
  express: ExpressFactory,
  store: PostgresStore<Data>,
  errors: unknown[],
  settings: { trustProxy?: boolean; secure?: boolean | "auto" } = {},
): express5.Express {
  const app = express();
  if (settings.trustProxy) app.set("trust proxy", true);
  app.use(sessionMiddleware<Data>({
    store,
    secrets: [SECRET],
    cookie: settings.secure === undefined ? {} : { secure: settings.secure },
  }));
  app.get("/health", (_req, res) => {
    res.send("ok");
  });
  app.post("/login", (req, res) => {
    req.session.regenerate();
    req.session.set("user", String(req.query.user ?? "ada"));
    res.cookie("theme", "dark");
    res.redirect(303, "/me");
  });
  app.get(
    "/me",
    route(async (req, res) => {
      // Typed by the app's augmentation of Express.Request (see the top of this file).
      // @ts-expect-error: "nope" is not a key of Data
      await req.session.get("nope");
      const user: string | undefined = await req.session.get("user");
      res.json({ user: user ?? null, visits: (await req.session.get("visits")) ?? 0 });
    }),
  );
  app.post(
    "/visit",
    route(async (req, res) => {
      const visits = ((await req.session.get("visits")) ?? 0) + 1;
      req.session.set("visits", visits);
      res.json({ visits });
    }),
  );
  app.post(
    "/slow-set",
    route(async (req, res) => {
      const key = req.query.k === "b" ? "b" : "a";
      await req.session.get(key);
      await sleep(Number(req.query.ms ?? 0));
      req.session.set(key, Number(req.query.v));
      res.end("set");
    }),
  );
  app.get("/stream", (req, res) => {
    req.session.set("streamed", true);
    res.setHeader("Content-Type", "text/plain");
    res.write("a");
    setTimeout(() => {
      res.write("b");
      res.end("c");
    }, 20);
  });
  app.get("/write-head", (req, res) => {
    req.session.set("streamed", true);
    res.cookie("early", "1");
    res.writeHead(201, { "Content-Type": "text/plain", "Set-Cookie": ["app=1", "other=2"], "Cache-Control": "public" });
    res.end("head");
  });
  app.get("/events", (req, res) => {
    req.session.set("streamed", true);
    res.setHeader("Content-Type", "text/event-stream");
    res.flushHeaders();
    res.write("data: 1\n\n");
    setTimeout(() => res.end("data: 2\n\n"), 20);
  });
  app.get("/pipe", (req, res) => {
    req.session.set("streamed", true);
    res.type("text/plain");
    Readable.from(["x", "y", "z"]).pipe(res);
  });
  app.get("/file", (req, res, next) => {
    req.session.set("streamed", true);
    res.sendFile(PACKAGE_JSON, (error) => error && next(error));
  });
  app.get("/keys", (req, res) => {
    res.json({ keys: Object.keys(req.session), json: JSON.stringify(req.session) });
  });
  app.post("/regenerate", (req, res) => {
    req.session.regenerate();
    res.end("regenerated");
  });
  app.post("/logout", (req, res) => {
    req.session.destroy();
    res.status(204).end();
  });
  app.post("/throw", (req) => {
    req.session.set("user", "mallory");
    throw new Error("boom");
  });
  app.post("/logout-then-throw", (req) => {
    req.session.destroy();
    throw new Error("boom");
  });
  app.use((error: unknown, _req: express5.Request, res: express5.Response, _next: express5.NextFunction) => {
    errors.push(error);
    res.status(500).json({ error: error instanceof SessionError ? error.code : String(error) });
  });
  return app;
}

describe("pgsession/express", { skip: dbSkip }, () => {
  const schema = randomSchema("express");
  const table = `${schema}.pgsession`;
  let admin: pg.Pool;
  let pool: pg.Pool;
  let statements: string[] = [];
  let store: PostgresStore<Data>;

  before(async () => {
    admin = adminPool();
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(schemaSql(table));
    pool = adminPool();
    store = new PostgresStore<Data>({
      client: {
        query: (text: string, params?: unknown[]) => {
          statements.push(text);
          return pool.query(text, params);
        },
      },
      table,
    });
  });
  after(async () => {
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin?.end();
    await pool?.end();
  });

  async function rowOf(token: string): Promise<boolean> {
    const { rows } = await admin.query(`SELECT 1 FROM "${schema}".pgsession WHERE session_key = $1`, [
      await handleOf(token),
    ]);
    return rows.length === 1;
  }

  for (const [version, express] of versions) {
    describe(version, () => {
      let server: Server;
      let base: string;
      const errors: unknown[] = [];

      before(async () => {
        server = createServer(makeApp(express, store, errors));
        base = await listen(server);
      });
      after(() => close(server));

      test("a route that never touches the session sends no SQL and sets no cookie", async () => {
        statements = [];
        const res = await new Browser(base).fetch("/health");
        assert.equal(await res.text(), "ok");
        assert.deepEqual(res.headers.getSetCookie(), []);
        assert.equal(statements.length, 0);
        // Express's own 404 answer goes through the middleware too.
        const missing = await new Browser(base).fetch("/nowhere");
        await missing.text();
        assert.equal(missing.status, 404);
        assert.deepEqual(missing.headers.getSetCookie(), []);
        assert.equal(statements.length, 0);
      });

      test("a sign-in answered with res.redirect sets the session cookie after the app's own", async () => {
        const browser = new Browser(base);
        const res = await browser.fetch("/login?user=ada", { method: "POST" });
        await res.text();
        assert.equal(res.status, 303);
        assert.equal(res.headers.get("location"), "/me");
        const cookies = res.headers.getSetCookie();
        assert.equal(cookies.length, 2);
        assert.match(cookies[0]!, /^theme=dark/);
        assert.match(cookies[1]!, /^__Host-session=[^;]+; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
        assert.match(res.headers.get("cache-control") ?? "", /private/);
        assert.match(res.headers.get("vary") ?? "", /Cookie/);
        assert.ok(await rowOf(tokenOf(browser.cookies.get(COOKIE)!)));
        const me = await browser.fetch("/me");
        assert.deepEqual(await me.json(), { user: "ada", visits: 0 });
        assert.deepEqual(me.headers.getSetCookie(), [], "a read sets no cookie");
      });

      test("res.json after an update: the data is stored before the client sees the answer", async () => {
        const browser = new Browser(base);
        assert.deepEqual(await (await browser.fetch("/visit", { method: "POST" })).json(), { visits: 1 });
        assert.deepEqual(await (await browser.fetch("/visit", { method: "POST" })).json(), { visits: 2 });
        assert.deepEqual(await (await browser.fetch("/me")).json(), { user: null, visits: 2 });
      });

      for (const path of ["/stream", "/events", "/pipe", "/file"]) {
        test(`a streamed body (${path}) carries the cookie in its head, every chunk intact`, async () => {
          const browser = new Browser(base);
          const res = await browser.fetch(path);
          const body = await res.text();
          assert.equal(res.status, 200);
          if (path === "/stream") assert.equal(body, "abc");
          if (path === "/pipe") assert.equal(body, "xyz");
          if (path === "/events") assert.equal(body, "data: 1\n\ndata: 2\n\n");
          if (path === "/file") assert.match(body, /"name": "pgsession"/);
          assert.equal(sessionCookies(res).length, 1);
          const token = tokenOf(browser.cookies.get(COOKIE)!);
          assert.ok(await rowOf(token));
        });
      }

      test("writeHead with its own headers: its Set-Cookie values kept with the session's, Cache-Control made private", async () => {
        const browser = new Browser(base);
        const res = await browser.fetch("/write-head");
        assert.equal(await res.text(), "head");
        assert.equal(res.status, 201);
        const names = res.headers.getSetCookie().map((c) => c.slice(0, c.indexOf("=")));
        // writeHead's Set-Cookie replaces what res.cookie() set, as Node does; the session's is added.
        assert.deepEqual(names, ["app", "other", COOKIE]);
        assert.equal(res.headers.get("content-type"), "text/plain");
        assert.equal(res.headers.get("cache-control"), "private");
      });

      test("req.session shows no methods and no data to Object.keys or JSON.stringify", async () => {
        const res = await new Browser(base).fetch("/keys");
        assert.deepEqual(await res.json(), { keys: [], json: "{}" });
      });

      test("regenerate gives a new id with the data kept, and the old id is anonymous", async () => {
        const browser = new Browser(base);
        await (await browser.fetch("/login?user=grace", { method: "POST" })).text();
        const before = browser.cookies.get(COOKIE)!;
        await (await browser.fetch("/regenerate", { method: "POST" })).text();
        const afterwards = browser.cookies.get(COOKIE)!;
        assert.notEqual(tokenOf(afterwards), tokenOf(before));
        assert.deepEqual(await (await browser.fetch("/me")).json(), { user: "grace", visits: 0 });
        assert.equal(await rowOf(tokenOf(before)), false);
        const replay = new Browser(base);
        replay.cookies.set(COOKIE, before);
        assert.deepEqual(await (await replay.fetch("/me")).json(), { user: null, visits: 0 });
      });

      test("destroy deletes the row and clears the cookie", async () => {
        const browser = new Browser(base);
        await (await browser.fetch("/login", { method: "POST" })).text();
        const token = tokenOf(browser.cookies.get(COOKIE)!);
        const res = await browser.fetch("/logout", { method: "POST" });
        assert.equal(res.status, 204);
        assert.match(sessionCookies(res)[0] ?? "", /^__Host-session=; Max-Age=0; Path=\//);
        assert.equal(await rowOf(token), false);
        assert.equal(browser.cookies.has(COOKIE), false);
      });

      test("a handler that throws: its changes are dropped, but a sign-out still commits", async () => {
        const browser = new Browser(base);
        await (await browser.fetch("/login?user=ada", { method: "POST" })).text();
        const token = tokenOf(browser.cookies.get(COOKIE)!);
        errors.length = 0;
        const res = await browser.fetch("/throw", { method: "POST" });
        assert.equal(res.status, 500);
        await res.text();
        assert.deepEqual(sessionCookies(res), []);
        assert.equal((errors[0] as Error).message, "boom");
        assert.deepEqual(await (await browser.fetch("/me")).json(), { user: "ada", visits: 0 });

        const out = await browser.fetch("/logout-then-throw", { method: "POST" });
        assert.equal(out.status, 500);
        await out.text();
        assert.equal(await rowOf(token), false);
        assert.match(sessionCookies(out)[0] ?? "", /Max-Age=0/);
      });

      test("concurrent requests of one session changing different keys keep both", async () => {
        const browser = new Browser(base);
        await (await browser.fetch("/visit", { method: "POST" })).text();
        const [slow, fast] = await Promise.all([
          browser.fetch("/slow-set?k=a&v=1&ms=150", { method: "POST" }),
          (async () => {
            await sleep(30);
            return browser.fetch("/slow-set?k=b&v=2&ms=0", { method: "POST" });
          })(),
        ]);
        await slow.text();
        await fast.text();
        const token = tokenOf(browser.cookies.get(COOKIE)!);
        const session = await store.read(token);
        assert.equal(await session?.get("a"), 1);
        assert.equal(await session?.get("b"), 2);
        assert.equal(await session?.get("visits"), 1);
      });

      test("cookie.secure auto follows req.protocol, so Express's trust proxy decides", async () => {
        const trusting = createServer(makeApp(express, store, [], { trustProxy: true, secure: "auto" }));
        const plain = createServer(makeApp(express, store, [], { secure: "auto" }));
        try {
          const headers = { "x-forwarded-proto": "https" };
          const viaProxy = await new Browser(await listen(trusting)).fetch("/visit", { method: "POST", headers });
          await viaProxy.text();
          assert.match(sessionCookies(viaProxy)[0] ?? "", /; Secure;/);
          const direct = await new Browser(await listen(plain)).fetch("/visit", { method: "POST", headers });
          await direct.text();
          assert.deepEqual(sessionCookies(direct), []);
          assert.doesNotMatch(sessionCookies(direct, "session")[0] ?? "missing", /Secure/);
          assert.equal(sessionCookies(direct, "session").length, 1);
        } finally {
          await close(trusting);
          await close(plain);
        }
      });

      test("a database failure goes to next(err): a SessionError, and no session cookie set or cleared", async () => {
        const down = new PostgresStore<Data>({
          client: {
            query: () => Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })),
          },
          table,
          logger: { warn() {} },
        });
        const seen: unknown[] = [];
        const broken = createServer(makeApp(express, down, seen));
        try {
          const browser = new Browser(await listen(broken));
          // A write: the commit fails after the handler answered; the app's answer is dropped.
          const res = await browser.fetch("/login", { method: "POST" });
          assert.equal(res.status, 500);
          assert.deepEqual(await res.json(), { error: "DATABASE_ERROR" });
          assert.deepEqual(sessionCookies(res), []);
          assert.ok(seen[0] instanceof SessionError);
          // A read with a cookie: the handler's get() fails, the cookie is left alone.
          browser.cookies.set(COOKIE, await sign(generateId(), SECRET));
          const read = await browser.fetch("/visit", { method: "POST" });
          assert.equal(read.status, 500);
          assert.deepEqual(await read.json(), { error: "DATABASE_ERROR" });
          assert.deepEqual(sessionCookies(read), []);
        } finally {
          await close(broken);
        }
      });
    });
  }

  test("mounted twice, one session; mounted after express-session, a clear error", async () => {
    const twice = express5();
    const middleware = sessionMiddleware<Data>({ store, secrets: [SECRET] });
    let first: unknown;
    twice.use(middleware, (req, _res, next) => {
      first = req.session;
      next();
    }, middleware);
    twice.post("/", (req, res) => {
      assert.equal(req.session, first);
      req.session.set("visits", 1);
      res.end("ok");
    });
    const seen: unknown[] = [];
    const behind = express5();
    behind.use((req, _res, next) => {
      (req as unknown as { session: object }).session = { cookie: {} };
      next();
    }, middleware);
    behind.use((error: unknown, _req: express5.Request, res: express5.Response, _next: express5.NextFunction) => {
      seen.push(error);
      res.status(500).end();
    });
    const servers = [createServer(twice), createServer(behind)];
    try {
      const res = await new Browser(await listen(servers[0]!)).fetch("/", { method: "POST" });
      assert.equal(await res.text(), "ok");
      assert.equal(sessionCookies(res).length, 1);
      const refused = await new Browser(await listen(servers[1]!)).fetch("/");
      assert.equal(refused.status, 500);
      await refused.text();
      assert.match(String(seen[0]), /req\.session is already set by another middleware \(express-session\?\)/);
    } finally {
      for (const server of servers) await close(server);
    }
  });

  describe("Connect-style, on a bare node:http server", () => {
    let server: Server;
    let base: string;
    const seen: unknown[] = [];

    before(async () => {
      const middleware = sessionMiddleware<Data>({ store, secrets: [SECRET] });
      server = createServer((req: IncomingMessage, res: ServerResponse) => {
        const request = req as IncomingMessage & { session?: Session<Data> };
        middleware(request, res, (error?: unknown) => {
          if (error) {
            seen.push(error);
            res.statusCode = 500;
            return res.end("error");
          }
          void (async () => {
            const visits = ((await request.session!.get("visits")) ?? 0) + 1;
            request.session!.set("visits", visits);
            res.setHeader("Content-Type", "text/plain");
            res.end(String(visits));
          })().catch((e) => {
            seen.push(e);
            res.statusCode = 500;
            res.end("error");
          });
        });
      });
      base = await listen(server);
    });
    after(() => close(server));

    test("sessions work without Express: the cookie set, the count kept", async () => {
      const browser = new Browser(base);
      const first = await browser.fetch("/");
      assert.equal(await first.text(), "1");
      assert.equal(sessionCookies(first).length, 1);
      const second = await browser.fetch("/");
      assert.equal(await second.text(), "2");
      assert.deepEqual(second.headers.getSetCookie(), []);
      assert.deepEqual(seen, []);
    });
  });
});
