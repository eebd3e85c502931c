// Where requests meet: revocations racing a regenerate, late responses after a sign-in in another
// tab, late touches of a session that is gone, the seed's own table, two databases with one table
// name. Deterministic first (a row lock held from a second connection, released at the chosen
// moment), then loops that count survivors. On every transport where a second connection exists.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { createSessions, PostgresStore, type RequestSession, schemaSql, SessionError, type Sessions } from "../mod.ts";
import { generateId, handleOf } from "../src/id.ts";
import { adminPool, databaseUrl, dbSkip, randomSchema, seedTableSql, withTimeZone } from "./_db.ts";
import { type Fixture, transports } from "./_transports.ts";

/** Waits until `n` statements on `schema` wait for a lock (an event, polled; generous bound). */
async function lockWaiters(admin: Fixture["sql"], schema: string, n: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [row] = await admin(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE wait_event_type = 'Lock' AND state = 'active' AND query LIKE '%' || $1 || '%'`,
      [schema],
    );
    if (Number(row!.n) >= n) return;
    if (Date.now() > deadline) throw new Error(`expected ${n} statements waiting for a lock, saw ${row!.n}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function warnings(): { logger: { warn(message: string): void }; messages: string[] } {
  const messages: string[] = [];
  return { logger: { warn: (message: string) => void messages.push(message) }, messages };
}

function setCookies(res: Response): string[] {
  return res.headers.getSetCookie();
}

for (const transport of transports) {
  describe(`races over ${transport.name}`, { skip: transport.needsServer ? dbSkip : undefined }, () => {
    let f: Fixture;
    let store: PostgresStore;
    let schema: string;
    // A row lock can only be raced from a second connection; one Client serializes its statements.
    const lockSkip = !transport.needsServer
      ? "needs a second connection"
      : transport.name.includes("Client")
      ? "one connection: its statements cannot race each other"
      : undefined;

    before(async () => {
      schema = randomSchema("races");
      f = await transport.setup(schema);
      store = f.store();
    });
    after(() => f?.close());

    async function signIn(user: string): Promise<string> {
      const session = store.create();
      session.set("cart", ["book"]);
      session.regenerate({ user });
      assert.equal(await store.save(session), "created");
      return session.id;
    }

    async function liveRows(user: string): Promise<number> {
      const [row] = await f.sql(
        `SELECT count(*)::int AS n FROM ${f.table} WHERE session_user_id = $1 AND session_expiry > now() AT TIME ZONE 'UTC'`,
        [user],
      );
      return Number(row!.n);
    }

    /**
     * Holds the row of `token` with FOR UPDATE from another connection, starts `regenerate()` of
     * that session and then `revoke`, releases the lock once both wait, and returns what happened.
     */
    async function heldLockRace(
      user: string,
      revoke: (token: string) => Promise<number>,
    ): Promise<{ moved: string; revoked: number; saved: string }> {
      const token = await signIn(user);
      const locker = await adminPool().connect();
      try {
        await locker.query("BEGIN");
        await locker.query(`SELECT 1 FROM ${f.table} WHERE session_key = $1 FOR UPDATE`, [await handleOf(token)]);
        const session = store.open(token);
        session.regenerate({ user });
        const saving = store.save(session);
        await lockWaiters(f.sql, schema, 1);
        const revoking = revoke(token);
        await lockWaiters(f.sql, schema, 2);
        await locker.query("COMMIT");
        const [saved, revoked] = await Promise.all([saving, revoking]);
        return { moved: session.id, revoked, saved };
      } finally {
        await locker.query("ROLLBACK").catch(() => {});
        locker.release();
      }
    }

    test(
      "revokeAll racing a regenerate held on a row lock ends the moved session too",
      { skip: lockSkip },
      async () => {
        const { moved, revoked } = await heldLockRace("race-all", () => store.revokeAll("race-all"));
        assert.equal(await store.read(moved), null, "the moved session is not live");
        assert.deepEqual(await store.sessionsOf("race-all"), []);
        assert.equal(await liveRows("race-all"), 0);
        assert.equal(revoked, 1, "the one live session counted once");
      },
    );

    test(
      "revoke(handle) racing a regenerate held on a row lock ends the moved session too",
      { skip: lockSkip },
      async () => {
        const { moved, revoked } = await heldLockRace(
          "race-one",
          async (token) => store.revoke(await handleOf(token), { user: "race-one" }),
        );
        assert.equal(await store.read(moved), null, "the moved session is not live");
        assert.equal(await liveRows("race-one"), 0);
        assert.equal(revoked, 1);
      },
    );

    test("revokeOthers racing another device's regenerate ends that device", { skip: lockSkip }, async () => {
      const keeper = await signIn("race-others");
      const { moved, revoked } = await heldLockRace("race-others", () => store.open(keeper).revokeOthers());
      assert.equal(await store.read(moved), null, "the other device is signed out");
      assert.ok(await store.read(keeper), "the asking device stays");
      assert.equal(await liveRows("race-others"), 1);
      assert.equal(revoked, 1);
    });

    test("revocations count live sessions only", async () => {
      const live = [await signIn("count-u"), await signIn("count-u"), await signIn("count-u")];
      const expired = await signIn("count-u");
      await f.sql(
        `UPDATE ${f.table} SET session_expiry = now() AT TIME ZONE 'UTC' - interval '1 hour' WHERE session_key = $1`,
        [await handleOf(expired)],
      );
      assert.equal((await store.sessionsOf("count-u")).length, 3);
      assert.equal(await store.revoke(await handleOf(expired)), 0, "an expired session was not live");
      const other = await signIn("count-v");
      const stale = await signIn("count-v");
      await f.sql(
        `UPDATE ${f.table} SET session_expiry = now() AT TIME ZONE 'UTC' - interval '1 hour' WHERE session_key = $1`,
        [await handleOf(stale)],
      );
      assert.equal(await store.revokeAll("count-u"), 3);
      assert.equal(await store.open(other).revokeOthers(), 0, "only an expired other session");
      for (const token of live) assert.equal(await store.read(token), null);
    });

    describe("late responses", () => {
      const secrets = ["s".repeat(32)];
      /** Makes the stored expiry lag so that the next read finds a touch due. */
      async function ageExpiry(token: string): Promise<void> {
        await f.sql(
          `UPDATE ${f.table} SET session_expiry = session_expiry - interval '2 days' WHERE session_key = $1`,
          [await handleOf(token)],
        );
      }

      async function cookieFor(sessions: Sessions): Promise<string> {
        const session = await sessions.open(new Request("https://app.test/"));
        session.set("n", 1);
        const res = await session.commit(new Response("ok"));
        const [set] = setCookies(res);
        assert.ok(set);
        return set.slice(0, set.indexOf(";"));
      }

      for (const mode of ["inline", "waitUntil"] as const) {
        for (const what of ["reads", "updates"] as const) {
          test(`a late response that ${what} after a regenerate in another tab leaves the new cookie alone (${mode})`, async () => {
            const sessions = createSessions({ store, secrets });
            const cookie = await cookieFor(sessions);
            await ageExpiry(cookie.slice(cookie.indexOf("=") + 1).split(".")[0]!);
            const request = () => new Request("https://app.test/", { headers: { cookie } });
            // Tab A reads the session, then takes its time.
            const late = await sessions.open(request());
            assert.equal(await late.get("n"), 1);
            if (what === "updates") late.set("m", 2);
            // Tab B signs in: a new token.
            const signIn = await sessions.open(request());
            signIn.regenerate();
            const signedIn = await signIn.commit(new Response("in"));
            assert.equal(setCookies(signedIn).length, 1, "the sign-in sets the new cookie");
            // Tab A answers now.
            const pending: Promise<unknown>[] = [];
            const res = await late.commit(
              new Response("late"),
              mode === "waitUntil" ? { waitUntil: (p) => void pending.push(p) } : {},
            );
            await Promise.all(pending);
            assert.deepEqual(setCookies(res), [], "no Set-Cookie: the browser keeps the new token");
            assert.equal(late.outcome, "gone");
          });
        }
      }

      test("a late read-only request whose due touch finds the session gone reports gone and logs it", async () => {
        const { logger, messages } = warnings();
        const sessions = createSessions({ store, secrets, logger });
        const cookie = await cookieFor(sessions);
        const token = cookie.slice(cookie.indexOf("=") + 1).split(".")[0]!;
        await ageExpiry(token);
        const late = await sessions.open(new Request("https://app.test/", { headers: { cookie } }));
        assert.equal(await late.get("n"), 1);
        assert.equal(await store.destroy(token), true, "signed out meanwhile");
        const res = await late.commit(new Response("late"));
        assert.deepEqual(setCookies(res), []);
        assert.equal(late.outcome, "gone");
        assert.equal(messages.length, 1, "logged once");
      });
    });

    test("a request session shows no enumerable or writable own properties", async () => {
      const sessions = createSessions({ store });
      const session: RequestSession = await sessions.open(new Request("https://app.test/"));
      assert.deepEqual(Object.keys(session), []);
      assert.equal(JSON.stringify(session), "{}");
      assert.throws(() => {
        (session as unknown as { outcome: string }).outcome = "destroyed";
      }, TypeError);
      assert.deepEqual(Object.getOwnPropertyNames(session), [], "methods live on the prototype");
      assert.equal(session.outcome, null);
    });

    test("on a table of the seed's shape no statement fails, from the first request on", async () => {
      const table = `${f.table}_seed`;
      await f.sql(seedTableSql(table));
      const seed = f.store({ table });
      const session = seed.create();
      session.set("n", 1);
      await f.resetCount();
      assert.equal(await seed.save(session), "created");
      assert.equal(await f.statements(), 1, "the first write is one INSERT");
      await f.resetCount();
      const read = seed.open(session.id);
      assert.equal(await read.get("n"), 1);
      assert.equal(await read.user(), null);
      assert.equal(await f.statements(), 1, "a read is one SELECT");
      read.regenerate();
      await f.resetCount();
      assert.equal(await seed.save(read), "regenerated");
      assert.equal(await f.statements(), 1, "a regenerate is one statement");
      // Binding a user needs the columns: a clear error, nothing lost.
      const bind = seed.open(read.id);
      bind.regenerate({ user: "u" });
      await assert.rejects(seed.save(bind), (e: SessionError) => e.code === "MIGRATION_REQUIRED");
      assert.equal(await (seed.open(read.id)).get("n"), 1);
    });

    test("a missing table is TABLE_MISSING and names the migrate command", async () => {
      const missing = f.store({ table: `${schema}.nowhere` });
      const error = await missing.read(generateId()).then(() => null, (e: unknown) => e);
      assert.ok(error instanceof SessionError, String(error));
      assert.equal(error.code, "TABLE_MISSING");
      assert.match(error.message, /npx pgsession migrate --table .*nowhere/);
    });
  });
}

describe("races that need many trials", { skip: dbSkip }, () => {
  let admin: pg.Pool;
  let pool: pg.Pool;
  const schema = randomSchema("races_loop");
  const table = `${schema}.session`;

  before(async () => {
    admin = adminPool();
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(schemaSql(table));
    pool = new pg.Pool({ connectionString: withTimeZone(databaseUrl()), max: 10 });
    pool.on("error", () => {});
  });
  after(async () => {
    await pool?.end();
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin?.end();
  });

  test("20 devices regenerating in a loop, 100 revokeAll calls: no survivors", async () => {
    const store = new PostgresStore({ client: pool, table });
    let survivors = 0;
    const TRIALS = 100;
    for (let trial = 0; trial < TRIALS; trial++) {
      const user = `loop-${trial}`;
      const tokens = await Promise.all(Array.from({ length: 20 }, async () => {
        const s = store.create();
        s.set("n", 1);
        s.regenerate({ user });
        await store.save(s);
        return s.id;
      }));
      let stop = false;
      const loops = tokens.map(async (first) => {
        let token = first;
        while (!stop) {
          const s = store.open(token);
          s.regenerate({ user });
          if ((await store.save(s)) !== "regenerated") return;
          token = s.id;
        }
      });
      // Let the loops get going, then sign the user out everywhere.
      await new Promise((resolve) => setTimeout(resolve, trial % 5));
      await store.revokeAll(user);
      stop = true;
      await Promise.all(loops);
      const [row] = (await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE session_user_id = $1`, [user]))
        .rows;
      survivors += Number(row.n);
    }
    assert.equal(survivors, 0, `${survivors} sessions survived ${TRIALS} revocations`);
  });
});

describe("two databases with one table name", { skip: dbSkip }, () => {
  const name = `twodb_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
  const other = new URL(databaseUrl());
  other.pathname = "/postgres";
  let migrated: pg.Pool;
  let seed: pg.Pool;

  before(async () => {
    migrated = new pg.Pool({ connectionString: withTimeZone(databaseUrl()), max: 2 });
    seed = new pg.Pool({ connectionString: withTimeZone(other.toString()), max: 2 });
    await migrated.query(schemaSql(name));
    await seed.query(seedTableSql(name));
  });
  after(async () => {
    await migrated?.query(`DROP TABLE IF EXISTS ${name}`);
    await seed?.query(`DROP TABLE IF EXISTS ${name}`);
    await migrated?.end();
    await seed?.end();
  });

  test("what one database's table lacks does not change what the other's stores do", async () => {
    const a = new PostgresStore({ client: migrated, table: name });
    const b = new PostgresStore({ client: seed, table: name });
    const signedIn = a.create();
    signedIn.set("n", 1);
    signedIn.regenerate({ user: "two-db" });
    await a.save(signedIn);
    // The unmigrated database is used in between.
    const anonymous = b.create();
    anonymous.set("n", 2);
    await b.save(anonymous);
    assert.equal(await (b.open(anonymous.id)).get("n"), 2);
    // A plain regenerate on the migrated database keeps the user.
    const rotate = a.open(signedIn.id);
    assert.equal(await rotate.get("n"), 1);
    rotate.regenerate();
    assert.equal(await a.save(rotate), "regenerated");
    assert.equal(await (a.open(rotate.id)).user(), "two-db");
    assert.equal((await a.sessionsOf("two-db")).length, 1);
  });
});
