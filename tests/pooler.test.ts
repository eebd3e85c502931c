// Default options through a transaction pooler: browsers hitting an application whose pg.Pool
// reaches PostgreSQL through PgBouncer in transaction mode, where a client's prepared statements
// do not follow it from one server connection to the next. Every request must succeed and every
// change must land.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { PostgresStore, type QueryClient, schemaSql, SessionError, withSession } from "../mod.ts";
import { adminPool, databaseUrl, DB_TIME_ZONE, dbSkip, randomSchema } from "./_db.ts";
import { type PgBouncer, startPgBouncer } from "./support/pgbouncer.ts";

const SECRET = "p".repeat(32);
const BROWSERS = 50;
const ROUNDS = 20;

function cookieOf(res: Response): string | null {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("__Host-session="));
  return set ? set.slice(0, set.indexOf(";")) : null;
}

describe("default options behind PgBouncer in transaction mode", { skip: dbSkip }, () => {
  let admin: pg.Pool;
  let bouncer: PgBouncer;
  const schema = randomSchema("pooler");
  const table = `${schema}.session`;
  const pools: pg.Pool[] = [];

  function pool(): pg.Pool {
    // As an application would: more client connections than PgBouncer has server connections.
    const p = new pg.Pool({ connectionString: bouncer.url, max: 10 });
    p.on("error", (): void => {});
    pools.push(p);
    return p;
  }

  before(async () => {
    admin = adminPool();
    await admin.query(`create schema "${schema}"`);
    await admin.query(schemaSql(table));
    bouncer = await startPgBouncer(databaseUrl(), { timeZone: DB_TIME_ZONE, poolSize: 4 });
  });
  after(async () => {
    for (const p of pools) await p.end().catch((): void => {});
    await bouncer?.close();
    await admin.query(`drop schema if exists "${schema}" cascade`);
    await admin.end();
  });

  test(`${BROWSERS} browsers x ${ROUNDS} rounds of read-and-modify all succeed and lose nothing`, async () => {
    const failures: string[] = [];
    const warnings: string[] = [];
    const app = withSession(async (_req, session) => {
      const n = ((await session.get("n")) as number | undefined) ?? 0;
      session.set("n", n + 1);
      return Response.json({ n });
    }, {
      store: { client: pool() as unknown as QueryClient, table, logger: { warn: (m) => void warnings.push(m) } },
      secrets: [SECRET],
      onError: (error: SessionError) => {
        failures.push(error.message);
        return new Response("failed", { status: 500 });
      },
    });

    let requests = 0;
    let failed = 0;
    const browser = async (): Promise<{ cookie: string | null; seen: number[] }> => {
      let cookie: string | null = null;
      const seen: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        requests++;
        const res = await app(new Request("https://app.test/", { headers: cookie ? { cookie } : {} }));
        if (res.status !== 200) {
          failed++;
          await res.body?.cancel();
          continue;
        }
        seen.push(((await res.json()) as { n: number }).n);
        cookie = cookieOf(res) ?? cookie;
      }
      return { cookie, seen };
    };
    const browsers = await Promise.all(Array.from({ length: BROWSERS }, browser));
    const distinct = [...new Set(failures.map((m) => m.replace(/pgsession_\w+/g, "pgsession_…")))];
    console.log(
      `through PgBouncer: ${failed} of ${requests} requests failed${
        distinct.length ? `: ${distinct.join(" | ")}` : ""
      }`,
    );

    assert.equal(failed, 0, "every request succeeds");
    for (const [i, { cookie, seen }] of browsers.entries()) {
      assert.ok(cookie, `browser ${i} has a cookie`);
      assert.deepEqual(seen, Array.from({ length: ROUNDS }, (_, n) => n), `browser ${i} saw every count in order`);
    }
    assert.equal(warnings.length, 1, `the switch to unnamed statements is logged once: ${warnings.join(" | ")}`);
    const rows = await admin.query(`select count(*)::int as n from ${table}`);
    assert.equal(rows.rows[0].n, BROWSERS, "one row per browser");
  });

  test("stores sharing the pool learn it once: after the switch, a new store sends nothing that fails", async () => {
    const p = pool();
    let failedStatements = 0;
    const original = p.query.bind(p) as (...args: unknown[]) => Promise<unknown>;
    const counted = {
      connect: p.connect.bind(p),
      on: p.on.bind(p),
      listenerCount: p.listenerCount.bind(p),
      query: (...args: unknown[]) =>
        original(...args).catch((error: unknown) => (failedStatements++, Promise.reject(error))),
    };
    // The same object for both stores, as an application shares its pool.
    const client = counted as unknown as QueryClient;
    const quiet = { warn: (): void => {} };
    const first = new PostgresStore({ client, table, logger: quiet });
    // Concurrent statements open every server connection, and a named one soon meets the wrong one.
    for (let round = 0; round < 10 && failedStatements === 0; round++) {
      await Promise.all(Array.from({ length: 40 }, () => first.count()));
    }
    assert.ok(failedStatements > 0, "the pooler refused a named statement at least once");
    const before = failedStatements;
    const second = new PostgresStore({ client, table, logger: quiet });
    await Promise.all(Array.from({ length: 40 }, () => second.count()));
    assert.equal(failedStatements, before, "no further statement failed");
  });

  test("explicit prepare: true behind the pooler still fails loudly with the server's error", async () => {
    const store = new PostgresStore({ client: pool() as unknown as QueryClient, table, prepare: true });
    const errors: unknown[] = [];
    for (let round = 0; round < 10 && errors.length === 0; round++) {
      const results = await Promise.allSettled(Array.from({ length: 40 }, () => store.count()));
      for (const r of results) if (r.status === "rejected") errors.push(r.reason);
    }
    assert.ok(errors.length > 0, "some statement failed");
    for (const error of errors) {
      assert.ok(error instanceof SessionError && error.code === "DATABASE_ERROR", String(error));
      assert.match(error.message, /prepared statement "pgsession_\w+" (already exists|does not exist)/);
    }
  });
});
