// A user's sessions: bind at sign-in, list them, sign out one device or everywhere else, on every
// transport; tables without the user columns keep working for everything else.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type PostgresStore, SessionError, withSession } from "../mod.ts";
import { handleOf, isId } from "../src/id.ts";
import { dbSkip, randomSchema, seedTableSql } from "./_db.ts";
import { type Fixture, transports } from "./_transports.ts";

for (const transport of transports) {
  describe(`a user's sessions over ${transport.name}`, { skip: transport.needsServer ? dbSkip : undefined }, () => {
    let f: Fixture;
    let store: PostgresStore;

    before(async () => {
      f = await transport.setup(randomSchema("users"));
      store = f.store();
    });
    after(() => f?.close());

    async function sent(action: () => Promise<unknown>): Promise<number> {
      await f.resetCount();
      await action();
      return await f.statements();
    }

    /** A stored anonymous session, then a sign-in that binds `user`: returns the new token. */
    async function signIn(user: string, label: string | null = null): Promise<string> {
      const session = store.create();
      session.set("cart", ["book"]);
      await store.save(session);
      const again = (await store.read(session.id))!;
      again.regenerate({ user, label });
      assert.equal(await store.save(again), "regenerated");
      return again.id;
    }

    test("sign-in with a user is one statement, like regenerate, and the user is read with the row", async () => {
      const anonymous = store.create();
      anonymous.set("cart", ["book"]);
      await store.save(anonymous);
      const lazy = store.open(anonymous.id);
      lazy.regenerate({ user: "u-1", label: "Firefox on Linux" });
      assert.equal(await sent(() => store.save(lazy)), 1);
      assert.equal(await lazy.user(), "u-1");
      const read = store.open(lazy.id);
      let user: string | null = null;
      assert.equal(
        await sent(async () => {
          user = await read.user();
          await read.get("cart");
        }),
        1,
      );
      assert.equal(user, "u-1");
      assert.deepEqual(await read.get("cart"), ["book"], "data kept");
      // A new session that signs in on its first request is one INSERT.
      const fresh = store.create();
      fresh.regenerate({ user: "u-1" });
      assert.equal(await sent(() => store.save(fresh)), 1);
      assert.equal(await (store.open(fresh.id)).user(), "u-1");
    });

    test("the user id never goes into the cookie or the data", async () => {
      const token = await signIn("secret-user-7");
      const [row] = await f.sql(`select session_data from ${f.table} where session_key = $1`, [await handleOf(token)]);
      assert.ok(!new TextDecoder().decode(row!.session_data as Uint8Array).includes("secret-user-7"));
      assert.ok(!token.includes("secret"));
    });

    test("sessionsOf lists live sessions with handles that are not tokens, in one statement", async () => {
      const a = await signIn("u-2", "Chrome on macOS");
      const b = await signIn("u-2", "Safari on iOS");
      const expired = await signIn("u-2");
      await f.sql(
        `update ${f.table} set session_expiry = session_expiry - interval '400 days' where session_key = $1`,
        [await handleOf(expired)],
      );
      await signIn("someone-else");
      let list: Awaited<ReturnType<PostgresStore["sessionsOf"]>> = [];
      assert.equal(
        await sent(async () => {
          list = await store.sessionsOf("u-2", { current: a });
        }),
        1,
      );
      assert.equal(list.length, 2);
      const mine = list.find((s) => s.current)!;
      assert.equal(mine.label, "Chrome on macOS");
      assert.equal(mine.handle, await handleOf(a));
      assert.ok(!isId(mine.handle), "a handle is never usable as a cookie");
      assert.deepEqual(list.map((s) => s.label).sort(), ["Chrome on macOS", "Safari on iOS"]);
      for (const s of list) {
        assert.ok(s.created.getTime() <= s.lastActive.getTime() + 1);
        assert.ok(s.lastActive.getTime() <= Date.now() + 60_000 && s.expires.getTime() > Date.now());
      }
      assert.ok(b);
    });

    test("revoke ends one session in one statement, and only the given user's", async () => {
      const a = await signIn("u-3");
      const handle = await handleOf(a);
      assert.equal(await store.revoke(handle, { user: "not-u-3" }), 0, "another user's handle ends nothing");
      let n = -1;
      assert.equal(
        await sent(async () => {
          n = await store.revoke(handle, { user: "u-3" });
        }),
        1,
      );
      assert.equal(n, 1);
      assert.equal(await store.read(a), null, "revocation is immediate");
      assert.equal(await store.revoke("not a handle"), 0);
    });

    test("revokeAll signs out everywhere else in one statement and keeps the current session", async () => {
      const keep = await signIn("u-4");
      await signIn("u-4");
      await signIn("u-4");
      const other = await signIn("u-5");
      let n = -1;
      assert.equal(
        await sent(async () => {
          n = await store.revokeAll("u-4", { except: await handleOf(keep) });
        }),
        1,
      );
      assert.equal(n, 2);
      assert.ok(await store.read(keep));
      assert.ok(await store.read(other), "other users keep theirs");
      assert.equal(await store.revokeAll("u-4"), 1);
      assert.equal(await store.read(keep), null);
    });

    test("a revoked session's running requests can neither write nor re-create it", async () => {
      const token = await signIn("u-6");
      const writers = await Promise.all(Array.from({ length: 5 }, async (_, i) => {
        const s = (await store.read(token))!;
        s.set(`w${i}`, i);
        return s;
      }));
      const [revoked, ...results] = await Promise.all([store.revokeAll("u-6"), ...writers.map((s) => store.save(s))]);
      assert.equal(revoked, 1);
      for (const result of results) assert.ok(result === "gone" || result === "updated", String(result));
      // Whatever order they ran in, the revocation wins: nothing was re-created.
      if (results.includes("updated")) await store.revokeAll("u-6");
      assert.equal(await store.read(token), null);
      const [row] = await f.sql(`select count(*)::int as n from ${f.table} where session_user_id = 'u-6'`);
      assert.equal(row!.n, 0);
    });

    test("on the request side: list, sign out one device, sign out everywhere else", async () => {
      const handler = withSession(async (req, session) => {
        const { pathname, searchParams } = new URL(req.url);
        if (pathname === "/login") {
          session.regenerate({ user: "u-7", label: searchParams.get("label") });
          return new Response("in");
        }
        if (pathname === "/devices") return Response.json(await session.sessions());
        if (pathname === "/revoke") return Response.json(await session.revoke(searchParams.get("h")!));
        if (pathname === "/others") return Response.json(await session.revokeOthers());
        return Response.json({ user: await session.user() });
      }, { store });
      const login = async (label: string) => {
        const res = await handler(new Request(`https://app.test/login?label=${label}`));
        const set = res.headers.getSetCookie()[0]!;
        return set.slice(0, set.indexOf(";"));
      };
      const get = (path: string, cookie: string) =>
        handler(new Request(`https://app.test${path}`, { headers: { cookie } }));
      const laptop = await login("laptop");
      const phone = await login("phone");
      const tablet = await login("tablet");
      const devices = await (await get("/devices", laptop)).json() as {
        handle: string;
        label: string;
        current: boolean;
      }[];
      assert.equal(devices.length, 3);
      assert.equal(devices.find((d) => d.current)!.label, "laptop");
      const phoneHandle = devices.find((d) => d.label === "phone")!.handle;
      assert.equal(await (await get(`/revoke?h=${phoneHandle}`, laptop)).json(), 1);
      assert.deepEqual(await (await get("/me", phone)).json(), { user: null }, "the revoked device is signed out");
      assert.equal(await (await get("/others", laptop)).json(), 1);
      assert.deepEqual(await (await get("/me", tablet)).json(), { user: null });
      assert.deepEqual(await (await get("/me", laptop)).json(), { user: "u-7" }, "this device stays signed in");
      const anonymous = await (await handler(new Request("https://app.test/devices"))).json();
      assert.deepEqual(anonymous, []);
    });

    test("a table without the user columns works as before; the user features say to migrate", async () => {
      const schema = f.table.split(".")[0];
      const table = `${schema}.old_session`;
      await f.sql(seedTableSql(table));
      const old = f.store({ table });
      const s = old.create();
      s.set("n", 1);
      assert.equal(await old.save(s), "created");
      const read = (await old.read(s.id))!;
      read.set("n", 2);
      assert.equal(await old.save(read), "updated");
      assert.equal(await (await old.read(s.id))!.get("n"), 2);
      const moved = (await old.regenerate(s.id))!;
      assert.equal(await moved.user(), null);
      assert.equal(await old.count(), 1);
      // Once the table is known to lack the columns, the counts are the plain ones.
      assert.equal(await sent(() => old.read(moved.id)), 1);
      const isMigration = (error: unknown) =>
        error instanceof SessionError && error.code === "MIGRATION_REQUIRED" && /migrate/.test(error.message);
      await assert.rejects(old.sessionsOf("u"), isMigration);
      await assert.rejects(old.revokeAll("u"), isMigration);
      const bind = (await old.read(moved.id))!;
      bind.regenerate({ user: "u" });
      await assert.rejects(old.save(bind), isMigration);
      assert.equal(await (await old.read(moved.id))!.get("n"), 2, "nothing lost");
    });
  });
}

describe("migrating a table with rows", { skip: dbSkip }, () => {
  test("schemaSql() adds the user columns to a 100k-row table without losing a row", async () => {
    const pg = (await import("pg")).default;
    const { adminPool } = await import("./_db.ts");
    const { schemaSql } = await import("../mod.ts");
    const admin: InstanceType<typeof pg.Pool> = adminPool();
    const schema = randomSchema("migrate");
    try {
      await admin.query(`create schema "${schema}"`);
      const table = `"${schema}"."session"`;
      await admin.query(seedTableSql(table));
      await admin.query(
        `insert into ${table} select md5(i::text) || md5((i + 1)::text), int8send(0) || '\\xa0'::bytea, now() + interval '1 day'
         from generate_series(1, 100000) as i`,
      );
      const started = performance.now();
      await admin.query(schemaSql(`${schema}.session`));
      const ms = performance.now() - started;
      console.log(`migration of 100k rows: ${Math.round(ms)} ms`);
      const [{ n, users }] =
        (await admin.query(`select count(*)::int as n, count(session_user_id)::int as users from ${table}`)).rows;
      assert.equal(n, 100_000);
      assert.equal(users, 0);
      await admin.query(schemaSql(`${schema}.session`)); // safe to run twice
    } finally {
      await admin.query(`drop schema if exists "${schema}" cascade`);
      await admin.end();
    }
  });
});
