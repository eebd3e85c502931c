// gc(): only expired rows go, in batches of one statement each, within its budget, and safely
// alongside other collectors and live traffic; then once per transport. Runs under Node and Deno.
// Database connections run with TimeZone=Pacific/Auckland (tests/_db.ts), the process with the
// test command's TZ: expiry must follow the database's UTC clock regardless.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { type GcProgress, PostgresStore, schemaSql, type SessionData } from "../mod.ts";
import { databaseUrl, dbSkip, randomSchema, withTimeZone } from "./_db.ts";
import { type Fixture as TransportFixture, transports } from "./_transports.ts";
import { configureNeon, startSupportServer, type SupportServer } from "./support/harness.ts";

const DATABASE_URL: string = withTimeZone(databaseUrl());
// Own schema per run: parallel test files and reruns never collide.
const SCHEMA: string = randomSchema("gc_test");
const NOW: string = "(now() AT TIME ZONE 'UTC')";

let pool: pg.Pool;
let tables = 0;

interface Fixture {
  /** Schema-qualified, unquoted: what `table` takes. */
  table: string;
  store: PostgresStore<SessionData>;
  /** Every statement the store sent. */
  statements: string[];
}

/** A fresh session table and a store on it that records the statements it sends. */
async function fixture(storeOptions: { ttl?: number; touchAfter?: number } = {}): Promise<Fixture> {
  const table = `${SCHEMA}.s${++tables}`;
  await pool.query(schemaSql(table));
  const statements: string[] = [];
  const client = {
    query: (text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }> => {
      statements.push(text);
      return pool.query(text, params);
    },
  };
  return { table, store: new PostgresStore({ client, table, ...storeOptions }), statements };
}

/** Where test SQL goes: the pool, or a transport fixture's uncounted admin connection. */
type Sql = Pick<pg.Pool, "query">;

/** Inserts rows whose expiry is `offset` (an SQL interval expression of `i`) from now, UTC. */
async function seed(table: string, count: number, offset: string, tag: string, sql: Sql = pool): Promise<void> {
  await sql.query(
    `INSERT INTO ${table} (session_key, session_data, session_expiry)
     SELECT encode(sha256(convert_to($1 || i, 'UTF8')), 'hex'), '\\x00'::bytea, ${NOW} + ${offset}
     FROM generate_series(1, $2::int) AS i`,
    [`${tag}:`, count],
  );
}

const seedExpired = (table: string, count: number, tag = "expired", sql?: Sql): Promise<void> =>
  seed(table, count, "-(i * interval '1 second')", tag, sql);
const seedLive = (table: string, count: number, tag = "live", sql?: Sql): Promise<void> =>
  seed(table, count, "interval '1 hour' + i * interval '1 second'", tag, sql);

async function counts(table: string, sql: Sql = pool): Promise<{ live: number; expired: number }> {
  const { rows } = await sql.query(
    `SELECT count(*) FILTER (WHERE session_expiry > ${NOW})::int AS live,
            count(*) FILTER (WHERE session_expiry <= ${NOW})::int AS expired FROM ${table}`,
  );
  return rows[0];
}

describe("gc()", { skip: dbSkip }, (): void => {
  before(async (): Promise<void> => {
    // Room for several collectors at once (the overlapping-runs test).
    pool = new pg.Pool({ connectionString: DATABASE_URL, max: 8 });
    await pool.query(`CREATE SCHEMA ${SCHEMA}`);
  });

  after(async (): Promise<void> => {
    try {
      await pool.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    } finally {
      await pool.end();
    }
  });

  test("deletes only rows whose expiry has passed by the database clock", async (): Promise<void> => {
    const { table, store } = await fixture();
    await seedExpired(table, 300);
    await seedLive(table, 200);
    // On either side of now: one a millisecond past, one a few seconds ahead.
    await pool.query(
      `INSERT INTO ${table} VALUES (repeat('a', 64), NULL, ${NOW} - interval '1 millisecond'),
                                   (repeat('b', 64), NULL, ${NOW} + interval '5 seconds')`,
    );
    const result = await store.gc();
    assert.deepEqual(result, { deleted: 301, batches: 1, done: true });
    assert.deepEqual(await counts(table), { live: 201, expired: 0 });
    const { rows } = await pool.query(`SELECT session_key FROM ${table} WHERE session_key = repeat('b', 64)`);
    assert.equal(rows.length, 1);
  });

  test("works in batches of batchSize, one statement each", async (): Promise<void> => {
    const { table, store, statements } = await fixture();
    await seedExpired(table, 2500);
    await seedLive(table, 10);
    const progress: GcProgress[] = [];
    const result = await store.gc({ batchSize: 1000, onBatch: (p: GcProgress): void => void progress.push(p) });
    assert.deepEqual(result, { deleted: 2500, batches: 3, done: true });
    assert.equal(statements.length, 3);
    assert.deepEqual(progress.map((p: GcProgress): number => p.batchDeleted), [1000, 1000, 500]);
    assert.deepEqual(progress.map((p: GcProgress): number => p.deleted), [1000, 2000, 2500]);
    assert.deepEqual(progress.map((p: GcProgress): boolean => p.done), [false, false, true]);
    assert.ok(progress.every((p: GcProgress): boolean => p.batchMs >= 0 && p.elapsedMs >= p.batchMs));
    assert.deepEqual(await counts(table), { live: 10, expired: 0 });
  });

  test("an exact multiple of batchSize needs one more, empty batch to be done", async (): Promise<void> => {
    const { table, store } = await fixture();
    await seedExpired(table, 200);
    assert.deepEqual(await store.gc({ batchSize: 100 }), { deleted: 200, batches: 3, done: true });
    assert.deepEqual(await store.gc({ batchSize: 100 }), { deleted: 0, batches: 1, done: true });
  });

  test("the batch statement walks the session_expiry index and deletes by TID", async (): Promise<void> => {
    const { table, store, statements } = await fixture();
    await seedExpired(table, 5000);
    await seedLive(table, 5000);
    await pool.query(`ANALYZE ${table}`);
    await store.gc({ batchSize: 1000, maxDurationMs: 0 }); // sends nothing
    await store.gc({ batchSize: 1000, signal: AbortSignal.abort() }); // sends nothing
    assert.equal(statements.length, 0);
    const stop = new AbortController();
    await store.gc({ batchSize: 10, signal: stop.signal, onBatch: (): void => stop.abort() });
    assert.equal(statements.length, 1);
    const { rows } = await pool.query(`EXPLAIN ${statements[0]!.replace("$1", "1000").replace("$2", "'-infinity'")}`);
    const plan = rows.map((r: Record<string, string>): string => r["QUERY PLAN"]!).join("\n");
    assert.match(plan, /Index Scan using s\d+_expiry_idx/);
    assert.match(plan, /Tid Scan/);
    assert.doesNotMatch(plan, /Seq Scan/);
  });

  test("a zero budget or an aborted signal sends no statement and reports done: false", async (): Promise<void> => {
    const { table, store, statements } = await fixture();
    await seedExpired(table, 50);
    assert.deepEqual(await store.gc({ maxDurationMs: 0 }), { deleted: 0, batches: 0, done: false });
    assert.deepEqual(await store.gc({ signal: AbortSignal.abort() }), { deleted: 0, batches: 0, done: false });
    assert.equal(statements.length, 0);
    assert.deepEqual(await counts(table), { live: 0, expired: 50 });
  });

  test("stops before its time budget with done: false and rows left", async (): Promise<void> => {
    const { table, store } = await fixture();
    await seedExpired(table, 5000);
    const budget = 60;
    let slowest = 0;
    const started = performance.now();
    const result = await store.gc({
      batchSize: 1,
      maxDurationMs: budget,
      onBatch: (p: GcProgress): void => void (slowest = Math.max(slowest, p.batchMs)),
    });
    const elapsed = performance.now() - started;
    assert.equal(result.done, false);
    assert.ok(result.deleted > 0 && result.deleted < 5000, `deleted ${result.deleted}`);
    assert.equal(result.deleted, result.batches);
    // No batch starts unless the slowest so far still fits; only a batch slower than all before
    // it can overrun, and by no more than itself.
    assert.ok(elapsed < budget + slowest + 20, `took ${elapsed} ms for a ${budget} ms budget`);
    assert.deepEqual(await counts(table), { live: 0, expired: 5000 - result.deleted });
  });

  test("an abort during the run stops it before the next batch", async (): Promise<void> => {
    const { table, store, statements } = await fixture();
    await seedExpired(table, 1000);
    const controller = new AbortController();
    const result = await store.gc({
      batchSize: 100,
      signal: controller.signal,
      onBatch: (p: GcProgress): void => {
        if (p.batches === 2) controller.abort();
      },
    });
    assert.deepEqual(result, { deleted: 200, batches: 2, done: false });
    assert.equal(statements.length, 2);
  });

  test("overlapping runs delete every expired row once, without errors or waiting", async (): Promise<void> => {
    const { table } = await fixture();
    await seedExpired(table, 5000);
    await seedLive(table, 1000);
    // Separate stores on the same table, as from overlapping cron runs or two regions.
    const stores = Array.from({ length: 4 }, (): PostgresStore => new PostgresStore({ client: pool, table }));
    const results = await Promise.all(stores.map((store: PostgresStore) => store.gc({ batchSize: 100 })));
    assert.equal(results.reduce((sum, r): number => sum + r.deleted, 0), 5000);
    assert.ok(results.every((r): boolean => r.done));
    // Every batch but each run's last is full: no batch was spent on rows another run had taken.
    assert.ok(results.reduce((sum, r): number => sum + r.batches, 0) <= 5000 / 100 + stores.length);
    assert.deepEqual(await counts(table), { live: 1000, expired: 0 });
  });

  test("skips an expired row another transaction is moving forward, which then lives on", async (): Promise<void> => {
    const { table, store } = await fixture();
    await seedExpired(table, 100);
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      // Row 1 of the seed: expired, now being renewed by a transaction that has not committed.
      const renewed = await client.query(
        `UPDATE ${table} SET session_expiry = ${NOW} + interval '1 hour'
         WHERE session_key = encode(sha256(convert_to('expired:1', 'UTF8')), 'hex') RETURNING 1`,
      );
      assert.equal(renewed.rowCount, 1);
      const result = await store.gc({ batchSize: 30, maxDurationMs: 5_000 });
      assert.deepEqual(result, { deleted: 99, batches: 4, done: true });
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    assert.deepEqual(await counts(table), { live: 1, expired: 0 });
  });

  test("a live session read and rolled forward throughout a run survives it", async (): Promise<void> => {
    // touchAfter 0: every read also UPDATEs the expiry, contending with the collector's locks.
    const { table, store } = await fixture({ ttl: 2, touchAfter: 0 });
    await seedExpired(table, 20_000);
    const session = store.create();
    session.set("user", "ada");
    assert.equal(await store.save(session), "created");
    let running = true;
    let reads = 0;
    const reader = (async (): Promise<void> => {
      while (running) {
        const again = await store.read(session.id);
        assert.ok(again, "the live session disappeared during gc");
        assert.equal(await again.get("user"), "ada");
        reads++;
      }
    })();
    try {
      const result = await store.gc({ batchSize: 200 });
      assert.deepEqual(result, { deleted: 20_000, batches: 101, done: true });
    } finally {
      running = false;
      await reader;
    }
    assert.ok(reads > 0);
    assert.ok(await store.read(session.id));
    assert.deepEqual(await counts(table), { live: 1, expired: 0 });
  });

  test("store.gc() is the same batched collection", async (): Promise<void> => {
    const { table, store, statements } = await fixture();
    await seedExpired(table, 10);
    await seedLive(table, 3);
    assert.deepEqual(await store.gc({ batchSize: 3 }), { deleted: 10, batches: 4, done: true });
    assert.equal(statements.length, 4);
    assert.match(statements[0]!, /FOR UPDATE SKIP LOCKED/);
    assert.deepEqual(await store.gc({ maxDurationMs: 0 }), { deleted: 0, batches: 0, done: false });
    assert.deepEqual(await counts(table), { live: 3, expired: 0 });
  });

  test("rejects a batchSize or maxDurationMs out of range before sending anything", async (): Promise<void> => {
    const { store, statements } = await fixture();
    for (const batchSize of [0, -1, 1.5, 100_001, Number.NaN]) {
      await assert.rejects(
        store.gc({ batchSize }),
        (e: unknown): boolean => e instanceof RangeError && /batchSize/.test(e.message),
      );
    }
    for (const maxDurationMs of [-1, Number.NaN]) {
      await assert.rejects(
        store.gc({ maxDurationMs }),
        (e: unknown): boolean => e instanceof RangeError && /maxDurationMs/.test(e.message),
      );
    }
    assert.equal(statements.length, 0);
  });

  test("a missing table is a SessionError TABLE_MISSING with the driver's error as cause", async (): Promise<void> => {
    const store = new PostgresStore({ client: pool, table: `${SCHEMA}.missing` });
    await assert.rejects(store.gc(), (e: unknown): boolean => {
      assert.equal((e as { code?: string }).code, "TABLE_MISSING");
      assert.match(
        (e as Error).message,
        /^Cannot collect expired sessions: table .*missing does not exist; create it with npx pgsession migrate --table/,
      );
      assert.equal(((e as Error).cause as { code?: string }).code, "42P01");
      return true;
    });
  });

  describe("over Neon's HTTP transport", (): void => {
    let server: SupportServer;

    before(async (): Promise<void> => {
      server = await startSupportServer();
      configureNeon(server.port);
    });

    after(async (): Promise<void> => {
      await server.close();
    });

    test("each batch is one HTTP round trip", async (): Promise<void> => {
      const { table } = await fixture();
      await seedExpired(table, 250);
      await seedLive(table, 5);
      const store = new PostgresStore({ connectionString: DATABASE_URL, fetchEndpoint: `${server.url}/sql`, table });
      await server.reset();
      assert.deepEqual(await store.gc({ batchSize: 100 }), { deleted: 250, batches: 3, done: true });
      assert.deepEqual((await server.stats()).http, { requests: 3, statements: 3 });
      assert.deepEqual(await counts(table), { live: 5, expired: 0 });
    });
  });
});

for (const transport of transports) {
  describe(`gc() over ${transport.name}`, { skip: transport.needsServer ? dbSkip : undefined }, (): void => {
    let t: TransportFixture;
    const sql: Sql = {
      query: async (text: string, params?: unknown[]) => ({ rows: await t.sql(text, params) }),
    } as Sql;

    before(async (): Promise<void> => {
      t = await transport.setup(randomSchema("gc_transport"));
    });

    after(async (): Promise<void> => {
      await t.close();
    });

    test("deletes only the expired rows, one statement per batch", async (): Promise<void> => {
      await seedExpired(t.table, 2500, "expired", sql);
      await seedLive(t.table, 7, "live", sql);
      const store = t.store();
      await t.resetCount();
      assert.deepEqual(await store.gc({ batchSize: 1000 }), { deleted: 2500, batches: 3, done: true });
      assert.equal(await t.statements(), 3);
      assert.deepEqual(await counts(t.table, sql), { live: 7, expired: 0 });
      assert.deepEqual(await store.gc(), { deleted: 0, batches: 1, done: true });
    });
  });
}
