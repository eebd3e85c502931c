// The lazy migration from express-session + connect-pg-simple. The old cookie's signature checked
// against the real cookie-signature package (both versions installed: express-session's and
// express 5's); then end to end: a real express-session + connect-pg-simple app (express 5, over
// loopback HTTP) signs browsers in, the app switches to pgsession/express with the legacy option,
// and the same browsers are still signed in, with their data, and nothing left in the old table.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";
import express from "express";
import expressSessionUntyped from "express-session";
import connectPgSimpleUntyped from "connect-pg-simple";
import pg from "pg";
import { createSessions, PostgresStore, schemaSql, type Session, withSession } from "../mod.ts";
import { handleOf, isId } from "../src/id.ts";
import { sessionMiddleware } from "../src/express.ts";
import { compileLegacy, readLegacyId } from "../src/_legacy.ts";
import { adminPool, dbSkip, randomSchema } from "./_db.ts";
import { close, listen } from "./support/listen.ts";

// Neither package ships types (nor is @types/express-session installed: it types req.session).
const expressSession = expressSessionUntyped as unknown as (options: Record<string, unknown>) => express.RequestHandler;
const connectPgSimple = connectPgSimpleUntyped as unknown as (
  session: unknown,
) => new (options: Record<string, unknown>) => unknown;

const require = createRequire(import.meta.url);
type Signer = { sign(value: string, secret: string): string; unsign(value: string, secret: string): string | false };
/** cookie-signature as express-session 1.x uses it (1.0.x), and as express 5 does (1.2.x). */
const signers: [string, Signer][] = [
  [
    `cookie-signature ${require("express-session/node_modules/cookie-signature/package.json").version}`,
    require(
      "express-session/node_modules/cookie-signature",
    ),
  ],
  [`cookie-signature ${require("cookie-signature/package.json").version}`, require("cookie-signature")],
];

const OLD_SECRET = "keyboard cat";
const ROTATED = "the secret express-session was given after keyboard cat";
const NEW_SECRET = "pgsession-secret-of-at-least-32-characters";
const COOKIE = "__Host-session";
const TARGET = { table: "pgsession", ttl: 604_800, absoluteTtl: 2_592_000, maxDataBytes: 65_536 };

interface Data {
  user: string;
  cart: { sku: string; qty: number }[];
  prefs: { theme: string };
  visits: number;
}

/** What express-session's req.session is to the old app. */
interface OldSession {
  user?: string;
  cart?: { sku: string; qty: number }[];
  prefs?: { theme: string };
  regenerate(callback: (error?: unknown) => void): void;
}

function oldSession(req: unknown): OldSession {
  return (req as { session: OldSession }).session;
}

function newSession(req: unknown): Session<Data> {
  return (req as { session: Session<Data> }).session;
}

function requestWith(cookie: string): Request {
  return new Request("https://app.test/", { headers: { cookie } });
}

class Browser {
  readonly cookies = new Map<string, string>();
  constructor(public base: string) {}

  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const res = await fetch(new URL(path, this.base), { ...init, headers, redirect: "manual" });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.slice(0, line.indexOf(";"));
      const name = pair.slice(0, pair.indexOf("="));
      if (/;\s*Max-Age=0/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(pair.indexOf("=") + 1));
    }
    return res;
  }
}

describe("reading express-session's cookie", () => {
  const legacy = compileLegacy({ secrets: [ROTATED, OLD_SECRET] }, TARGET);
  const sids = ["Zx8kq0bC3vJ2nS1mQ7pR4tW6yA9dF5gH", "with.dots.in.it", "ünïcödé id", "a"];

  for (const [name, signature] of signers) {
    test(`a value signed by ${name} verifies, with any listed secret, URL-encoded or not`, async () => {
      for (const sid of sids) {
        for (const secret of [OLD_SECRET, ROTATED]) {
          const value = `s:${signature.sign(sid, secret)}`;
          assert.equal(signature.unsign(value.slice(2), secret), sid);
          const encoded = await readLegacyId(requestWith(`connect.sid=${encodeURIComponent(value)}`), legacy);
          assert.equal(encoded?.sid, sid);
          const raw = await readLegacyId(requestWith(`other=1; connect.sid=${value}`), legacy);
          assert.equal(raw?.sid, sid);
          assert.ok(isId(encoded!.id), "the derived token has the shape of one pgsession issues");
          assert.equal(raw!.id, encoded!.id);
        }
      }
    });

    test(`forged, tampered or unsigned values from ${name} are refused`, async () => {
      const value = `s:${signature.sign("Zx8kq0bC3vJ2nS1mQ7pR4tW6yA9dF5gH", OLD_SECRET)}`;
      const dot = value.lastIndexOf(".");
      const mac = value.slice(dot + 1);
      const flip = (c: string) => (c === "A" ? "B" : "A");
      const bad = [
        `s:${signature.sign("Zx8kq0bC3vJ2nS1mQ7pR4tW6yA9dF5gH", "another secret")}`,
        `${value.slice(0, dot)}.${flip(mac[0]!)}${mac.slice(1)}`,
        `${value.slice(0, dot)}.${mac.slice(0, -1)}${flip(mac.at(-1)!)}`,
        `s:Zx8kq0bC3vJ2nS1mQ7pR4tW6yA9dF5gX${value.slice(dot)}`,
        `${value}=`, // padding: not the spelling cookie-signature makes
        `${value.slice(0, dot)}.${mac.replaceAll("+", "-").replaceAll("/", "_")}${/[+/]/.test(mac) ? "" : "-"}`,
        value.slice(2), // no "s:": express-session ignores unsigned values
        "s:",
        "s:.",
        `s:${signature.sign("nul\0id", OLD_SECRET)}`,
        `s:${signature.sign("x".repeat(300), OLD_SECRET)}`,
        "%E0%A4%A",
      ];
      for (const v of bad) {
        assert.equal(await readLegacyId(requestWith(`connect.sid=${encodeURIComponent(v)}`), legacy), null, v);
      }
      assert.equal(await readLegacyId(requestWith(`session=${encodeURIComponent(value)}`), legacy), null);
    });
  }

  test("each old id derives its own token, the same under every secret that verifies it", async () => {
    const [, signature] = signers[0]!;
    const one = await readLegacyId(requestWith(`connect.sid=s:${signature.sign("one", OLD_SECRET)}`), legacy);
    const two = await readLegacyId(requestWith(`connect.sid=s:${signature.sign("two", OLD_SECRET)}`), legacy);
    assert.notEqual(one!.id, two!.id);
    const alone = compileLegacy({ secrets: [OLD_SECRET] }, TARGET);
    const again = await readLegacyId(requestWith(`connect.sid=s:${signature.sign("one", OLD_SECRET)}`), alone);
    assert.equal(again!.id, one!.id);
  });

  test("options that cannot work fail at start-up", () => {
    assert.throws(() => compileLegacy({ secrets: [] }, TARGET), /secrets is empty/);
    assert.throws(() => compileLegacy({ secrets: [""] }, TARGET), /secrets\[0\] is empty/);
    assert.throws(() => compileLegacy({ secrets: [OLD_SECRET], cookie: "connect sid" }, TARGET), TypeError);
    assert.throws(() => compileLegacy({ secrets: [OLD_SECRET], path: "app" }, TARGET), TypeError);
    assert.throws(() => compileLegacy({ secrets: [OLD_SECRET], table: "x; drop" }, TARGET), TypeError);
    assert.throws(
      () => compileLegacy({ secrets: [OLD_SECRET] }, { ...TARGET, table: "session" }),
      /also pgsession's table; give pgsession another one/,
    );
    assert.throws(
      () =>
        createSessions({
          store: { client: { query: () => Promise.resolve({ rows: [] }) } },
          legacy: { secrets: [OLD_SECRET] },
        }),
      /also pgsession's table/,
    );
  });
});

describe("moving express-session + connect-pg-simple sessions to pgsession", { skip: dbSkip }, () => {
  const schema = randomSchema("legacy");
  const oldTable = `"${schema}"."session"`;
  const newTable = `"${schema}"."pgsession"`;
  let admin: pg.Pool;
  let pool: pg.Pool;
  let statements: string[] = [];
  let store: PostgresStore<Data>;
  let newServer: Server;
  let newBase: string;
  /** Browsers signed in by the old app, with what they were given. */
  const people = [
    { user: "ada", cart: [{ sku: "engine", qty: 1 }], prefs: { theme: "dark" } },
    { user: "grace", cart: [], prefs: { theme: "light" } },
    { user: "edsger", cart: [{ sku: "goto", qty: 0 }, { sku: "semaphore", qty: 2 }], prefs: { theme: "dark" } },
  ];
  const browsers: Browser[] = [];
  /** Each browser's old cookie value, kept to replay it after the move. */
  const oldCookies: string[] = [];

  async function oldRow(cookieValue: string): Promise<boolean> {
    const sid = decodeURIComponent(cookieValue).slice(2).replace(/\.[^.]*$/, "");
    const { rows } = await admin.query(`SELECT 1 FROM ${oldTable} WHERE sid = $1`, [sid]);
    return rows.length === 1;
  }

  async function newRows(): Promise<number> {
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${newTable}`);
    return rows[0].n;
  }

  function newApp(client: pg.Pool | { query: pg.Pool["query"] } = pool, logger = { warn() {} }): express.Express {
    const app = express();
    app.use(sessionMiddleware<Data>({
      store: new PostgresStore<Data>({
        client: {
          query: (text: string, params?: unknown[]) => {
            statements.push(text);
            return (client as pg.Pool).query(text, params);
          },
        },
        table: `${schema}.pgsession`,
        logger,
      }),
      secrets: [NEW_SECRET],
      legacy: { secrets: [ROTATED, OLD_SECRET], table: `${schema}.session` },
      logger,
    }));
    app.get("/me", async (req, res, next) => {
      try {
        const session = newSession(req);
        res.json({
          user: (await session.get("user")) ?? null,
          cart: (await session.get("cart")) ?? null,
          prefs: (await session.get("prefs")) ?? null,
          keys: (await session.keys()).sort(),
        });
      } catch (error) {
        next(error);
      }
    });
    app.post("/logout", (req, res) => {
      newSession(req).destroy();
      res.status(204).end();
    });
    app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(500).json({ error: (error as { code?: string }).code ?? String(error) });
    });
    return app;
  }

  before(async () => {
    admin = adminPool();
    pool = adminPool();
    await admin.query(`CREATE SCHEMA "${schema}"`);
    // connect-pg-simple's table.sql, in this run's schema.
    await admin.query(`CREATE TABLE ${oldTable} (
      "sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL, "expire" timestamp(6) NOT NULL,
      CONSTRAINT "session_pkey" PRIMARY KEY ("sid"))`);
    await admin.query(`CREATE INDEX "IDX_session_expire" ON ${oldTable} ("expire")`);
    // pgsession's table beside it, under another name (npx pgsession migrate --table pgsession).
    await admin.query(schemaSql(`${schema}.pgsession`));

    // The app before: express-session + connect-pg-simple, as their READMEs set them up.
    const PgStore = connectPgSimple(expressSession);
    const oldApp = express();
    oldApp.use(expressSession({
      store: new PgStore({ pool, schemaName: schema, tableName: "session", pruneSessionInterval: false }),
      secret: OLD_SECRET,
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 86_400_000 },
    }));
    oldApp.post("/login", (req, res, next) => {
      const person = people[Number(req.query.i)]!;
      oldSession(req).regenerate((error) => {
        if (error) return next(error);
        Object.assign(oldSession(req), person);
        res.redirect(303, "/me");
      });
    });
    oldApp.get("/me", (req, res) => {
      const s = oldSession(req);
      res.json({ user: s.user ?? null, cart: s.cart ?? null, prefs: s.prefs ?? null });
    });
    const oldServer = createServer(oldApp);
    const oldBase = await listen(oldServer);
    try {
      for (const [i, person] of people.entries()) {
        const browser = new Browser(oldBase);
        await (await browser.fetch(`/login?i=${i}`, { method: "POST" })).text();
        assert.deepEqual(await (await browser.fetch("/me")).json(), person);
        const cookie = browser.cookies.get("connect.sid");
        assert.match(cookie ?? "", /^s%3A/);
        assert.ok(await oldRow(cookie!));
        browsers.push(browser);
        oldCookies.push(cookie!);
      }
    } finally {
      await close(oldServer);
    }

    // The app after: pgsession/express with the legacy option, same host.
    newServer = createServer(newApp());
    newBase = await listen(newServer);
    for (const browser of browsers) browser.base = newBase;
  });

  after(async () => {
    await close(newServer);
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin?.end();
    await pool?.end();
  });

  test("the same browsers are still signed in, with their data; the old rows and cookies are gone", async () => {
    for (const [i, browser] of browsers.entries()) {
      statements = [];
      const res = await browser.fetch("/me");
      assert.deepEqual(await res.json(), { ...people[i], keys: ["cart", "prefs", "user"] });
      // A read of the old row and the move: two statements, then the handler's read of the new one.
      assert.equal(statements.length, 3);
      const cookies = res.headers.getSetCookie();
      assert.equal(cookies.filter((c) => c.startsWith(`${COOKIE}=`)).length, 1);
      assert.ok(cookies.includes("connect.sid=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"), cookies.join("\n"));
      assert.match(res.headers.get("cache-control") ?? "", /private/);
      assert.equal(browser.cookies.has("connect.sid"), false);
      assert.equal(await oldRow(oldCookies[i]!), false, "nothing is left in the old table");
      // The next request is an ordinary pgsession request: no cookie to set.
      statements = [];
      const again = await browser.fetch("/me");
      assert.deepEqual(await again.json(), { ...people[i], keys: ["cart", "prefs", "user"] });
      assert.deepEqual(again.headers.getSetCookie(), []);
      assert.equal(statements.length, 1);
    }
    assert.equal(await newRows(), people.length);
  });

  test("the old cookie replayed after the move reaches the moved session, never a second one", async () => {
    const before = await newRows();
    const replay = new Browser(newBase);
    replay.cookies.set("connect.sid", oldCookies[0]!);
    const res = await replay.fetch("/me");
    assert.equal((await res.json()).user, "ada");
    assert.equal(await newRows(), before);
    assert.equal(replay.cookies.get(COOKIE), browsers[0]!.cookies.get(COOKIE));
    assert.equal(replay.cookies.has("connect.sid"), false);
  });

  test("a tampered old cookie gets nothing and costs no SQL", async () => {
    const value = decodeURIComponent(oldCookies[1]!);
    const tampered = [
      value.replace(/^s:./, (m) => (m === "s:A" ? "s:B" : "s:A")),
      value.slice(0, -1) + (value.endsWith("A") ? "B" : "A"),
    ];
    for (const cookie of tampered) {
      const browser = new Browser(newBase);
      browser.cookies.set("connect.sid", encodeURIComponent(cookie));
      statements = [];
      const res = await browser.fetch("/me");
      assert.deepEqual(await res.json(), { user: null, cart: null, prefs: null, keys: [] });
      assert.equal(statements.length, 0);
      assert.deepEqual(res.headers.getSetCookie(), []);
    }
  });

  test("an expired or unknown old session gives a fresh session and clears the old cookie", async () => {
    const [, signature] = signers[0]!;
    await admin.query(
      `INSERT INTO ${oldTable} (sid, sess, expire) VALUES ('expired-sid', $1, now() - interval '1 minute')`,
      [
        JSON.stringify({ cookie: {}, user: "old" }),
      ],
    );
    for (const sid of ["expired-sid", "never-issued"]) {
      const browser = new Browser(newBase);
      browser.cookies.set("connect.sid", encodeURIComponent(`s:${signature.sign(sid, OLD_SECRET)}`));
      const res = await browser.fetch("/me");
      assert.deepEqual(await res.json(), { user: null, cart: null, prefs: null, keys: [] });
      assert.deepEqual(res.headers.getSetCookie().filter((c) => c.startsWith(`${COOKIE}=`)), []);
      assert.equal(browser.cookies.has("connect.sid"), false);
    }
    // An expired row is connect-pg-simple's pruning's business, not ours.
    assert.equal((await admin.query(`SELECT 1 FROM ${oldTable} WHERE sid = 'expired-sid'`)).rows.length, 1);
  });

  test("old data is taken as data: no cookie field, no __proto__ at any depth, Object.prototype clean", async () => {
    const [, signature] = signers[1]!;
    await admin.query(`INSERT INTO ${oldTable} (sid, sess, expire) VALUES ('hostile', $1, now() + interval '1 hour')`, [
      '{"cookie":{"path":"/"},"user":"mallory","prefs":{"theme":"x","__proto__":{"polluted":1}},"__proto__":{"polluted":1},"__flash":1}',
    ]);
    const browser = new Browser(newBase);
    browser.cookies.set("connect.sid", encodeURIComponent(`s:${signature.sign("hostile", ROTATED)}`));
    const body = await (await browser.fetch("/me")).json();
    assert.deepEqual(body, { user: "mallory", cart: null, prefs: { theme: "x" }, keys: ["prefs", "user"] });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test("an old session holding only express-session's cookie field is deleted, not moved", async () => {
    const [, signature] = signers[0]!;
    await admin.query(`INSERT INTO ${oldTable} (sid, sess, expire) VALUES ('empty', $1, now() + interval '1 hour')`, [
      JSON.stringify({ cookie: { path: "/" } }),
    ]);
    const before = await newRows();
    const browser = new Browser(newBase);
    browser.cookies.set("connect.sid", `s:${signature.sign("empty", OLD_SECRET)}`);
    const res = await browser.fetch("/me");
    assert.deepEqual((await res.json()).keys, []);
    assert.equal(await newRows(), before);
    assert.equal((await admin.query(`SELECT 1 FROM ${oldTable} WHERE sid = 'empty'`)).rows.length, 0);
    assert.equal(browser.cookies.has("connect.sid"), false);
  });

  test("two requests of one browser racing to move its session make one session, and both see it", async () => {
    const [, signature] = signers[0]!;
    await admin.query(`INSERT INTO ${oldTable} (sid, sess, expire) VALUES ('raced', $1, now() + interval '1 hour')`, [
      JSON.stringify({ cookie: {}, user: "barbara", cart: [{ sku: "clu", qty: 1 }] }),
    ]);
    const cookie = encodeURIComponent(`s:${signature.sign("raced", OLD_SECRET)}`);
    // Hold the old row so both requests reach the move statement, then let them go together.
    const holder = await admin.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM ${oldTable} WHERE sid = 'raced' FOR UPDATE`);
      const racing = [new Browser(newBase), new Browser(newBase)].map((browser) => {
        browser.cookies.set("connect.sid", cookie);
        return browser.fetch("/me").then(async (res) => ({ browser, body: await res.json() }));
      });
      let waiting = 0;
      for (let waited = 0; waited < 5000 && waiting < 2; waited += 20) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const { rows } = await admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`,
          [`%DELETE FROM ${oldTable}%`],
        );
        waiting = rows[0].n;
      }
      assert.equal(waiting, 2, "both requests wait on the old row in the move statement");
      await holder.query("COMMIT");
      const results = await Promise.all(racing);
      for (const { body } of results) assert.equal(body.user, "barbara");
      const tokens = results.map(({ browser }) => browser.cookies.get(COOKIE));
      assert.ok(tokens[0]);
      assert.equal(tokens[0], tokens[1], "the loser opened the winner's session");
      const key = await handleOf(tokens[0]!.split(".")[0]!);
      assert.equal((await admin.query(`SELECT 1 FROM ${newTable} WHERE session_key = $1`, [key])).rows.length, 1);
      assert.equal((await admin.query(`SELECT 1 FROM ${oldTable} WHERE sid = 'raced'`)).rows.length, 0);
    } finally {
      holder.release();
    }
  });

  test("many trials of four racing requests: exactly one session each, nobody loses the data", async () => {
    const [, signature] = signers[1]!;
    for (let trial = 0; trial < 10; trial++) {
      const sid = `race-${trial}`;
      await admin.query(`INSERT INTO ${oldTable} (sid, sess, expire) VALUES ($1, $2, now() + interval '1 hour')`, [
        sid,
        JSON.stringify({ cookie: {}, user: `u${trial}` }),
      ]);
      const cookie = encodeURIComponent(`s:${signature.sign(sid, OLD_SECRET)}`);
      const results = await Promise.all([0, 1, 2, 3].map(async () => {
        const browser = new Browser(newBase);
        browser.cookies.set("connect.sid", cookie);
        const body = await (await browser.fetch("/me")).json();
        return { body, token: browser.cookies.get(COOKIE) };
      }));
      for (const { body, token } of results) {
        assert.equal(body.user, `u${trial}`);
        assert.equal(token, results[0]!.token);
      }
      const key = await handleOf(results[0]!.token!.split(".")[0]!);
      assert.equal((await admin.query(`SELECT 1 FROM ${newTable} WHERE session_key = $1`, [key])).rows.length, 1);
    }
  });

  test("after a sign-out, the old cookie replayed gets an anonymous session", async () => {
    const browser = browsers[2]!;
    const res = await browser.fetch("/logout", { method: "POST" });
    assert.equal(res.status, 204);
    const replay = new Browser(newBase);
    replay.cookies.set("connect.sid", oldCookies[2]!);
    assert.equal((await (await replay.fetch("/me")).json()).user, null);
    assert.equal(replay.cookies.has(COOKIE), false);
  });

  test("a database failure while moving goes to next(err), and the old session stays", async () => {
    const [, signature] = signers[0]!;
    await admin.query(`INSERT INTO ${oldTable} (sid, sess, expire) VALUES ('kept', $1, now() + interval '1 hour')`, [
      JSON.stringify({ cookie: {}, user: "kept" }),
    ]);
    const down = { query: () => Promise.reject(new Error("connect ECONNREFUSED")) } as unknown as pg.Pool;
    const server = createServer(newApp(down));
    try {
      const browser = new Browser(await listen(server));
      browser.cookies.set("connect.sid", encodeURIComponent(`s:${signature.sign("kept", OLD_SECRET)}`));
      const res = await browser.fetch("/me");
      assert.equal(res.status, 500);
      assert.deepEqual(await res.json(), { error: "DATABASE_ERROR" });
      assert.deepEqual(res.headers.getSetCookie(), [], "no cookie set or cleared on an error");
      assert.equal((await admin.query(`SELECT 1 FROM ${oldTable} WHERE sid = 'kept'`)).rows.length, 1);
    } finally {
      await close(server);
    }
  });

  test("a request that failed after the move: the next one with the old cookie gets the moved session", async () => {
    const [, signature] = signers[0]!;
    await admin.query(`INSERT INTO ${oldTable} (sid, sess, expire) VALUES ('failed', $1, now() + interval '1 hour')`, [
      JSON.stringify({ cookie: {}, user: "ken" }),
    ]);
    let calls = 0;
    const handler = withSession<Data>(async (_request, session) => {
      const user = await session.get("user");
      if (calls++ === 0) throw new Error("the handler failed after reading");
      // Immutable headers (Response.redirect): the cookies still get on a copy.
      return Response.redirect(`https://app.test/hello/${user}`, 303);
    }, {
      store: { client: pool, table: `${schema}.pgsession` },
      secrets: [NEW_SECRET],
      legacy: { secrets: [OLD_SECRET], table: `${schema}.session` },
    });
    const cookie = `connect.sid=${encodeURIComponent(`s:${signature.sign("failed", OLD_SECRET)}`)}`;
    await assert.rejects(handler(requestWith(cookie)), /the handler failed/);
    assert.equal((await admin.query(`SELECT 1 FROM ${oldTable} WHERE sid = 'failed'`)).rows.length, 0);
    const before = await newRows();
    const res = await handler(requestWith(cookie));
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), "https://app.test/hello/ken");
    const cookies = res.headers.getSetCookie();
    assert.equal(cookies.filter((c) => c.startsWith(`${COOKIE}=`)).length, 1);
    assert.ok(cookies.some((c) => c.startsWith("connect.sid=; Max-Age=0")));
    assert.equal(await newRows(), before);
  });

  test("with a pgsession cookie present, the old cookie is not looked at", async () => {
    const browser = browsers[0]!;
    const replay = new Browser(newBase);
    replay.cookies.set(COOKIE, browser.cookies.get(COOKIE)!);
    replay.cookies.set("connect.sid", oldCookies[1]!);
    statements = [];
    const res = await replay.fetch("/me");
    assert.equal((await res.json()).user, "ada");
    assert.equal(statements.length, 1, "only the pgsession read");
    assert.deepEqual(res.headers.getSetCookie(), []);
  });

  test("withSession moves old sessions too (an edge app in front of the same database)", async () => {
    const [, signature] = signers[0]!;
    await admin.query(`INSERT INTO ${oldTable} (sid, sess, expire) VALUES ('edge', $1, now() + interval '1 hour')`, [
      JSON.stringify({ cookie: {}, user: "alan", visits: 3 }),
    ]);
    const handler = withSession<Data>(async (_request, session) => {
      const visits = ((await session.get("visits")) ?? 0) + 1;
      session.set("visits", visits);
      return Response.json({ user: await session.get("user"), visits });
    }, {
      store: { client: pool, table: `${schema}.pgsession` },
      secrets: [NEW_SECRET],
      legacy: { secrets: [OLD_SECRET], table: `${schema}.session` },
    });
    const res = await handler(
      requestWith(`connect.sid=${encodeURIComponent(`s:${signature.sign("edge", OLD_SECRET)}`)}`),
    );
    assert.deepEqual(await res.json(), { user: "alan", visits: 4 });
    const cookies = res.headers.getSetCookie();
    assert.equal(cookies.filter((c) => c.startsWith(`${COOKIE}=`)).length, 1);
    assert.ok(cookies.some((c) => /^connect\.sid=; Max-Age=0; Path=\/; HttpOnly; Secure/.test(c)));
  });
});
