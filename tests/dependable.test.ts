// Dependable in production: every wait is bounded, bursts of writers succeed, responses that set
// a cookie stay out of shared caches, sign-outs stick, and failures are never silent.
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { type Logger, PostgresStore, type RequestSession, SessionError, withSession } from "../mod.ts";
import { handleOf } from "../src/id.ts";
import { adminPool, databaseUrl, dbSkip, randomSchema, withTimeZone } from "./_db.ts";
import { schemaSql } from "../mod.ts";
import { startSupportServer, type SupportServer } from "./support/harness.ts";

const SECRET = "d".repeat(32);
const BOUND = 600;
// Generous: the bound plus scheduling noise on a busy two-core machine.
const MARGIN = 1_500;

interface Warning {
  message: string;
  details?: Record<string, unknown>;
}

function spyLogger(): { logger: Logger; warnings: Warning[] } {
  const warnings: Warning[] = [];
  return { warnings, logger: { warn: (message, details) => void warnings.push({ message, details }) } };
}

function cookieOf(res: Response): string | null {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("__Host-session="));
  return set ? set.slice(0, set.indexOf(";")) : null;
}

function tokenOf(cookie: string): string {
  return cookie.slice(cookie.indexOf("=") + 1).split(".")[0]!;
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const start = performance.now();
  const [result] = await Promise.allSettled([work()]);
  return { ms: performance.now() - start, result: result! };
}

function assertTimeout(outcome: { ms: number; result: PromiseSettledResult<unknown> }, label: string): void {
  assert.equal(outcome.result.status, "rejected", `${label}: rejected`);
  const error = (outcome.result as PromiseRejectedResult).reason;
  assert.ok(error instanceof SessionError, `${label}: a SessionError, got ${String(error)}`);
  assert.equal(error.code, "TIMEOUT", `${label}: ${error.message}`);
  assert.match(error.message, /within \d+ ms/);
  assert.ok(outcome.ms < BOUND + MARGIN, `${label}: ended after ${Math.round(outcome.ms)} ms`);
  console.log(`${label}: TIMEOUT after ${Math.round(outcome.ms)} ms (bound ${BOUND} ms)`);
}

/** A TCP proxy to PostgreSQL that can hold back every byte while `stalled`. */
async function stallingProxy(target: URL): Promise<{ url: string; stall(on: boolean): void; close(): Promise<void> }> {
  let stalled = false;
  const held: (() => void)[] = [];
  const sockets = new Set<net.Socket>();
  const pipe = (from: net.Socket, to: net.Socket) => {
    from.on("data", (chunk) => {
      if (!stalled) return void to.write(chunk);
      from.pause();
      held.push(() => {
        to.write(chunk);
        from.resume();
      });
    });
    from.on("close", () => to.destroy());
    from.on("error", () => to.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const url = new URL(target.href);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.href,
    stall(on) {
      stalled = on;
      if (!on) { for (const release of held.splice(0)) release(); }
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("dependable in production (pg.Pool)", { skip: dbSkip }, () => {
  let admin: pg.Pool;
  let schema: string;
  let table: string;
  const pools: pg.Pool[] = [];

  function pool(max: number, url = withTimeZone(databaseUrl())): pg.Pool {
    const p = new pg.Pool({ connectionString: url, max });
    pools.push(p);
    return p;
  }

  before(async () => {
    admin = adminPool();
    schema = randomSchema("dep");
    table = `${schema}.session`;
    await admin.query(`create schema "${schema}"`);
    await admin.query(schemaSql(table));
  });
  after(async () => {
    for (const p of pools) await p.end().catch(() => {});
    await admin.query(`drop schema if exists "${schema}" cascade`);
    await admin.end();
  });

  async function signedIn(store: PostgresStore, data: Record<string, unknown> = { n: 1 }): Promise<string> {
    const session = store.create();
    for (const [k, v] of Object.entries(data)) session.set(k, v);
    await store.save(session);
    return session.id;
  }

  // --- 1. No call waits forever ------------------------------------------------------------------

  test("a stalled connection is TIMEOUT within timeoutMs, and the same pool works once it flows again", async () => {
    const proxy = await stallingProxy(new URL(databaseUrl()));
    try {
      const p = pool(2, withTimeZone(proxy.url));
      p.on("error", () => {});
      const store = new PostgresStore({ client: p, table, timeoutMs: BOUND });
      const id = await signedIn(store);
      proxy.stall(true);
      assertTimeout(await timed(() => store.read(id)), "stalled read");
      const fresh = store.create();
      fresh.set("x", 1);
      assertTimeout(await timed(() => store.save(fresh)), "stalled insert");
      proxy.stall(false);
      const again = await store.read(id);
      assert.equal(await again?.get("n"), 1, "the next call on the same pool succeeds");
    } finally {
      proxy.close();
    }
  });

  test("a row locked by another transaction is TIMEOUT; a pool of one still serves other sessions", async () => {
    const p = pool(1);
    const store = new PostgresStore({ client: p, table, timeoutMs: BOUND });
    const id = await signedIn(store);
    const other = await signedIn(store, { other: true });
    const locker = await admin.connect();
    try {
      await locker.query("begin");
      await locker.query(`select 1 from ${table} where session_key = $1 for update`, [await handleOf(id)]);
      const session = (await store.read(id))!;
      session.set("n", 2);
      assertTimeout(await timed(() => store.save(session)), "locked row, save");
      assertTimeout(await timed(() => store.destroy(id)), "locked row, destroy");
      // The waiting ended on the server: the only connection is free for another session.
      const unrelated = (await store.read(other))!;
      unrelated.set("more", 1);
      assert.equal(await store.save(unrelated), "updated");
    } finally {
      await locker.query("rollback");
      locker.release();
    }
    const after = (await store.read(id))!;
    assert.equal(await after.get("n"), 1, "nothing was half-written");
    after.set("n", 3);
    assert.equal(await store.save(after), "updated", "the row is writable once the lock is gone");
  });

  test("withSession turns a TIMEOUT into onError, leaves the cookie alone and writes nothing", async () => {
    const p = pool(1);
    const store = new PostgresStore({ client: p, table, timeoutMs: BOUND });
    const id = await signedIn(store);
    const { sign } = await import("../src/_signature.ts");
    const cookie = `__Host-session=${await sign(id, SECRET)}`;
    const locker = await admin.connect();
    let seen: SessionError | null = null;
    try {
      await locker.query("begin");
      await locker.query(`select 1 from ${table} where session_key = $1 for update`, [await handleOf(id)]);
      const handler = withSession(async (_req, s) => {
        s.set("n", ((await s.get("n")) as number) + 1);
        return new Response("ok");
      }, {
        store,
        secrets: [SECRET],
        onError: (error) => ((seen = error), new Response("busy", { status: 503 })),
      });
      const { ms, result } = await timed(() => handler(new Request("https://app.test/", { headers: { cookie } })));
      assert.equal(result.status, "fulfilled");
      const res = (result as PromiseFulfilledResult<Response>).value;
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("set-cookie"), null);
      assert.equal((seen as SessionError | null)?.code, "TIMEOUT");
      assert.ok(ms < BOUND + MARGIN, `${Math.round(ms)} ms`);
    } finally {
      await locker.query("rollback");
      locker.release();
    }
    assert.equal(await (await store.read(id))!.get("n"), 1);
  });

  test("an aborted request abandons its session work and commits nothing", async () => {
    const store = new PostgresStore({ client: pool(2), table });
    // Deno: the library never reads request.signal (reading a Deno.serve request's signal prints a
    // notice, and Deno aborts it on every successful response); the store's own signal still works.
    if (!("Deno" in globalThis)) {
      const before = Number((await admin.query(`select count(*) from ${table}`)).rows[0].count);
      const controller = new AbortController();
      const handler = withSession((_req, s) => {
        s.set("x", 1);
        controller.abort(); // the client goes away while the handler runs
        return new Response("too late");
      }, { store });
      await handler(new Request("https://app.test/", { signal: controller.signal }));
      const after = Number((await admin.query(`select count(*) from ${table}`)).rows[0].count);
      assert.equal(after, before, "no row inserted");
    }

    // Aborted while the session's read is waiting for a stalled database: the read gives up at once.
    const proxy = await stallingProxy(new URL(databaseUrl()));
    try {
      const p = pool(1, withTimeZone(proxy.url));
      p.on("error", () => {});
      const slowStore = new PostgresStore({ client: p, table, timeoutMs: 30_000 });
      const id = await signedIn(slowStore);
      proxy.stall(true);
      const aborting = new AbortController();
      const session = slowStore.open(id, { signal: aborting.signal });
      setTimeout(() => aborting.abort(), 100);
      const { ms, result } = await timed(() => session.get("n"));
      assert.equal(result.status, "rejected");
      assert.equal(((result as PromiseRejectedResult).reason as SessionError).code, "ABORTED");
      assert.ok(ms < 100 + MARGIN, `${Math.round(ms)} ms`);
      proxy.stall(false);
      assert.equal(await (await slowStore.read(id))!.get("n"), 1, "the pool works afterwards");
    } finally {
      proxy.close();
    }
  });

  // --- 2. Contention that succeeds ---------------------------------------------------------------

  test("100 parallel writers, each setting its own key on one session through a pool of 10, all succeed", async () => {
    const p = pool(10);
    const store = new PostgresStore({ client: p, table });
    const handler = withSession(async (req, s) => {
      const k = new URL(req.url).searchParams.get("k")!;
      s.set(k, true);
      return new Response("ok");
    }, { store, secrets: [SECRET] });
    for (const writers of [25, 50, 100]) {
      const first = await handler(new Request("https://app.test/?k=start"));
      const cookie = cookieOf(first)!;
      const started = performance.now();
      const results = await Promise.allSettled(
        Array.from(
          { length: writers },
          (_, i) => handler(new Request(`https://app.test/?k=k${i}`, { headers: { cookie } })),
        ),
      );
      const failed = results.filter((r) => r.status === "rejected" || r.value.status !== 200).length;
      const session = (await store.read(tokenOf(cookie)))!;
      const keys = (await session.keys()).filter((k) => k.startsWith("k"));
      console.log(
        `${writers} parallel writers: ${failed} failed, ${keys.length} keys, ${
          Math.round(performance.now() - started)
        } ms`,
      );
      assert.equal(failed, 0);
      assert.equal(keys.length, writers, "every key is there");
    }
  });

  test("writers in separate stores (as in separate processes) merge through compare-and-set", async () => {
    const base = new PostgresStore({ client: pool(4), table });
    const id = await signedIn(base);
    // Each writer reads first, then all save: every save but the first loses a race and merges.
    const sessions = await Promise.all(Array.from({ length: 8 }, async () => (await base.read(id))!));
    sessions.forEach((s, i) => s.set(`w${i}`, i));
    const results = await Promise.all(sessions.map((s) => base.save(s)));
    assert.deepEqual(results, Array(8).fill("updated"));
    const keys = await (await base.read(id))!.keys();
    for (let i = 0; i < 8; i++) assert.ok(keys.includes(`w${i}`), `w${i} kept`);
  });

  // --- 4. Responses that caches cannot leak ------------------------------------------------------

  test("a response that sets the session cookie is never left public", async () => {
    const store = new PostgresStore({ client: pool(2), table });
    const res = await withSession((_req, s) => {
      s.set("x", 1);
      return new Response("hi", { headers: { "cache-control": "public, max-age=3600, s-maxage=600" } });
    }, { store })(new Request("https://app.test/"));
    assert.ok(res.headers.get("set-cookie"));
    assert.equal(res.headers.get("cache-control"), "private, max-age=3600");
  });

  test("header mode: Vary names the header and a response that read the session is private", async () => {
    const store = new PostgresStore({ client: pool(2), table });
    const id = await signedIn(store);
    const res = await withSession(async (_req, s) => Response.json(await s.get("n")), { store, header: "X-Session" })(
      new Request("https://app.test/", { headers: { "x-session": id } }),
    );
    assert.equal(await res.json(), 1);
    assert.match(res.headers.get("vary") ?? "", /X-Session/);
    assert.match(res.headers.get("cache-control") ?? "", /private/);
  });

  // --- 5. Logout and lifetimes that hold ---------------------------------------------------------

  test("a sign-out sticks even when the handler then throws or answers 5xx", async () => {
    const store = new PostgresStore({ client: pool(2), table });
    const handler = (fail: "throw" | "500") =>
      withSession((_req, s) => {
        s.destroy();
        s.set("ignored", 1);
        if (fail === "throw") throw new Error("after sign-out");
        return new Response("oops", { status: 500 });
      }, { store });
    for (const fail of ["throw", "500"] as const) {
      const id = await signedIn(store);
      const req = new Request("https://app.test/", { headers: { cookie: `__Host-session=${id}` } });
      await handler(fail)(req).catch(() => undefined);
      assert.equal(await store.exists(id), false, `signed out despite ${fail}`);
    }
  });

  test("a request whose session vanished while it ran sends no Set-Cookie and reports gone", async () => {
    const spy = spyLogger();
    const store = new PostgresStore({ client: pool(2), table });
    const id = await signedIn(store);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let seen: RequestSession | null = null;
    const slow = withSession(async (_req, s) => {
      await s.get("n");
      await gate; // meanwhile another request signs in again (regenerates)
      s.set("n", 5);
      seen = s;
      return new Response("slow");
    }, { store, logger: spy.logger });
    const slowRes = slow(new Request("https://app.test/", { headers: { cookie: `__Host-session=${id}` } }));
    await new Promise((r) => setTimeout(r, 50));
    const moved = (await store.regenerate(id))!;
    release();
    const res = await slowRes;
    assert.equal(res.headers.get("set-cookie"), null, "the fresh login cookie is not overwritten");
    assert.equal((seen as RequestSession | null)?.outcome, "gone");
    assert.ok(spy.warnings.some((w) => /another request/.test(w.message)), "logged");
    assert.equal(await (await store.read(moved.id))!.get("n"), 1);
  });

  // --- 6. Odd stored values ----------------------------------------------------------------------

  test("an expiry of infinity or beyond the Date range reads as expired, never a 5xx", async () => {
    const spy = spyLogger();
    const store = new PostgresStore({ client: pool(2), table, logger: spy.logger, absoluteTtl: null });
    for (const expiry of ["infinity", "294000-01-01"]) {
      const id = await signedIn(store);
      await admin.query(`update ${table} set session_expiry = $1::timestamp where session_key = $2`, [
        expiry,
        await handleOf(id),
      ]);
      const res = await withSession(async (_req, s) => Response.json((await s.get("n")) ?? null), { store })(
        new Request("https://app.test/", { headers: { cookie: `__Host-session=${id}` } }),
      );
      assert.equal(res.status, 200, expiry);
      assert.equal(await res.json(), null, `${expiry}: a fresh session`);
    }
    assert.ok(spy.warnings.length >= 2);
  });

  // --- 7. Failures never silent ------------------------------------------------------------------

  test("a failed background commit is logged, and a throwing release() does not discard the response", async () => {
    const spy = spyLogger();
    const p = pool(2);
    const store = new PostgresStore({ client: p, table, logger: spy.logger });
    const id = await signedIn(store);
    const pending: Promise<unknown>[] = [];
    const res = await withSession(async (_req, s) => {
      s.set("n", ((await s.get("n")) as number) + 1);
      // The update runs in the background and finds the table gone.
      await admin.query(`alter table ${table} rename to session_moved`);
      return new Response("ok");
    }, {
      store,
      logger: spy.logger,
      waitUntil: (promise) => void pending.push(promise),
      release: () => {
        throw new Error("release failed");
      },
    })(new Request("https://app.test/", { headers: { cookie: `__Host-session=${id}` } }));
    assert.equal(res.status, 200);
    await Promise.all(pending); // resolves: the failure was handled, not left unhandled
    await admin.query(`alter table ${schema}.session_moved rename to session`);
    assert.ok(
      spy.warnings.some((w) => /Background session commit failed/.test(w.message)),
      JSON.stringify(spy.warnings),
    );
    assert.ok(spy.warnings.some((w) => /release\(\) failed/.test(w.message)));
  });

  test("a pool without an error listener gets one: a killed idle connection is logged, not fatal", async () => {
    const spy = spyLogger();
    const p = new pg.Pool({
      connectionString: withTimeZone(databaseUrl()),
      max: 1,
      application_name: "pgsession-idle-kill",
    });
    pools.push(p);
    assert.equal(p.listenerCount("error"), 0);
    const store = new PostgresStore({ client: p, table, logger: spy.logger });
    assert.equal(p.listenerCount("error"), 1);
    await signedIn(store);
    const logged = new Promise<void>((resolve) => p.once("error", () => resolve()));
    await admin.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pgsession-idle-kill'",
    );
    await logged;
    assert.ok(spy.warnings.some((w) => /idle/.test(w.message)));
    assert.ok(await store.count() >= 1, "the pool replaced the connection");
  });
});

describe("dependable in production (Neon HTTP)", { skip: dbSkip }, () => {
  let support: SupportServer;
  let stall: http.Server;
  let stalling = true;
  const schema = randomSchema("dephttp");
  const table = `${schema}.session`;
  let admin: pg.Pool;

  before(async () => {
    support = await startSupportServer();
    admin = adminPool();
    await admin.query(`create schema "${schema}"`);
    await admin.query(schemaSql(table));
    // A /sql stand-in that never answers while `stalling`, and forwards to the real one after.
    stall = http.createServer(async (req, res) => {
      if (stalling) return; // never answers
      const body = await new Promise<Buffer>((resolve) => {
        const chunks: Buffer[] = [];
        req.on("data", (c) => chunks.push(c)).on("end", () => resolve(Buffer.concat(chunks)));
      });
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string" && k.startsWith("neon-")) headers[k] = v;
      }
      const upstream = await fetch(`${support.url}/sql`, { method: "POST", body: new Uint8Array(body), headers });
      res.writeHead(upstream.status, { "content-type": "application/json" });
      res.end(Buffer.from(await upstream.arrayBuffer()));
    });
    await new Promise<void>((resolve) => stall.listen(0, "127.0.0.1", resolve));
  });
  after(async () => {
    stall.closeAllConnections();
    await new Promise<void>((resolve) => stall.close(() => resolve()));
    await admin.query(`drop schema if exists "${schema}" cascade`);
    await admin.end();
    await support.close();
  });

  test("a /sql endpoint that never answers is TIMEOUT within timeoutMs; the next call succeeds", async () => {
    const endpoint = `http://127.0.0.1:${(stall.address() as AddressInfo).port}/sql`;
    const store = new PostgresStore({
      connectionString: withTimeZone(databaseUrl()),
      fetchEndpoint: endpoint,
      table,
      timeoutMs: BOUND,
    });
    stalling = true;
    assertTimeout(await timed(() => store.count()), "Neon HTTP, no answer");
    stalling = false;
    assert.equal(typeof (await store.count()), "number");
  });

  test("connection strings: a non-Neon host is refused at construction and nothing is sent", async () => {
    let requests = 0;
    const trap = http.createServer((_req, res) => {
      requests++;
      res.end();
    });
    await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
    try {
      for (
        const url of [
          "postgres://user:pw@127.0.0.1/db",
          "postgres://user:pw@localhost/db",
          "postgres://user:pw@db.example.com/db",
        ]
      ) {
        assert.throws(() => new PostgresStore({ connectionString: url }), (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, /not a Neon host/);
          assert.match(error.message, /client:/);
          assert.match(error.message, /fetchEndpoint/);
          assert.ok(!error.message.includes("pw"), "no password in the message");
          return true;
        });
      }
      assert.equal(requests, 0);
      // Neon hosts keep working as before (nothing is sent until the first statement).
      new PostgresStore({ connectionString: "postgres://u:p@ep-cool-1.us-east-2.aws.neon.tech/db" });
      assert.throws(
        () => new PostgresStore({ connectionString: "postgres://u:p@x/db", fetchEndpoint: "ftp://x/sql" }),
        TypeError,
      );
    } finally {
      await new Promise<void>((resolve) => trap.close(() => resolve()));
    }
  });
});
