// Proves the test-support servers let the real @neondatabase/serverless driver reach the local
// PostgreSQL over both transports, and that the round-trip counters are exact.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, neon, NeonDbError, type NeonQueryFunction, Pool } from "@neondatabase/serverless";
import {
  configureNeon,
  databaseUrl,
  startSupportServer,
  type SupportServer,
  type SupportStats,
} from "./support/harness.ts";
import { FrontendStatementCounter } from "./support/ws_proxy.ts";

// Own schema per run: parallel test files and reruns never collide.
const SCHEMA: string = `support_test_${Math.random().toString(36).slice(2, 10)}`;
const BYTES: Uint8Array = new Uint8Array([0, 1, 2, 127, 128, 254, 255, 92, 120]);

let server: SupportServer;
let sql: NeonQueryFunction<false, false>;

before(async (): Promise<void> => {
  server = await startSupportServer();
  configureNeon(server.port);
  sql = neon(databaseUrl());
  await sql.query(`create schema ${SCHEMA}`);
  await sql.query(`create table ${SCHEMA}.blobs (id int primary key, data bytea)`);
});

after(async (): Promise<void> => {
  try {
    await sql.query(`drop schema if exists ${SCHEMA} cascade`);
  } finally {
    await server.close();
  }
});

describe("HTTP /sql endpoint via neon()", (): void => {
  test("select 1 is one request and one statement", async (): Promise<void> => {
    await server.reset();
    assert.deepEqual(await sql`select 1 as one`, [{ one: 1 }]);
    const stats: SupportStats = await server.stats();
    assert.deepEqual(stats.http, { requests: 1, statements: 1 });
  });

  test("parameterized queries, including NULL", async (): Promise<void> => {
    assert.deepEqual(await sql`select ${"a"}::text || ${"b"}::text as s, ${null}::int as n`, [{ s: "ab", n: null }]);
    assert.deepEqual(await sql.query("select $1::int + $2::int as sum", [2, 3]), [{ sum: 5 }]);
  });

  test("bytea round trip", async (): Promise<void> => {
    await sql`insert into ${sql.unsafe(SCHEMA)}.blobs (id, data) values (1, ${BYTES}), (2, ${null})`;
    const rows: Record<string, unknown>[] = await sql`select id, data from ${
      sql.unsafe(SCHEMA)
    }.blobs where id in (1, 2) order by id`;
    assert.deepEqual(new Uint8Array(rows[0].data as Uint8Array), BYTES);
    assert.equal(rows[1].data, null);
  });

  test("Postgres errors surface as NeonDbError with their fields", async (): Promise<void> => {
    await assert.rejects(sql`select 1/0`, (error: unknown): boolean => {
      assert.ok(error instanceof NeonDbError);
      assert.equal(error.code, "22012");
      assert.equal(error.severity, "ERROR");
      return true;
    });
    await assert.rejects(sql`selec 1`, (error: unknown): boolean => {
      assert.ok(error instanceof NeonDbError);
      assert.equal(error.code, "42601");
      assert.equal(error.position, "1");
      return true;
    });
  });

  test("a transaction batch is one request, honours options, rolls back on error", async (): Promise<void> => {
    await server.reset();
    const [, shown] = await sql.transaction([
      sql`insert into ${sql.unsafe(SCHEMA)}.blobs (id) values (10)`,
      sql`select current_setting('transaction_isolation') as iso, current_setting('transaction_read_only') as ro`,
    ], { isolationLevel: "Serializable" });
    assert.deepEqual(shown, [{ iso: "serializable", ro: "off" }]);
    assert.deepEqual((await server.stats()).http, { requests: 1, statements: 2 });

    await assert.rejects(
      sql.transaction([
        sql`insert into ${sql.unsafe(SCHEMA)}.blobs (id) values (11)`,
        sql`select 1/0`,
      ]),
      NeonDbError,
    );
    const [readOnly] = await sql.transaction([sql`show transaction_read_only`], { readOnly: true });
    assert.deepEqual(readOnly, [{ transaction_read_only: "on" }]);
    assert.deepEqual(await sql`select count(*)::int as n from ${sql.unsafe(SCHEMA)}.blobs where id in (10, 11)`, [{
      n: 1,
    }]);
  });
});

describe("WebSocket proxy via Pool and Client", (): void => {
  test("Pool: parameterized query, bytea round trip, exact statement count", async (): Promise<void> => {
    const pool: Pool = new Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      await server.reset();
      const sum = await pool.query<{ n: number }>("select $1::int + 1 as n", [41]);
      assert.equal(sum.rows[0].n, 42);
      await pool.query(`insert into ${SCHEMA}.blobs (id, data) values (20, $1)`, [BYTES]);
      const read = await pool.query<{ data: Uint8Array }>(`select data from ${SCHEMA}.blobs where id = 20`);
      assert.deepEqual(new Uint8Array(read.rows[0].data), BYTES);
      const stats: SupportStats = await server.stats();
      assert.deepEqual(stats.ws, { connections: 1, statements: 3 });
      assert.equal(stats.http.requests, 0);
    } finally {
      await pool.end();
    }
  });

  test("Client: interactive transaction, counts each statement", async (): Promise<void> => {
    const client: Client = new Client(databaseUrl());
    await client.connect();
    try {
      await server.reset();
      await client.query("begin");
      await client.query(`insert into ${SCHEMA}.blobs (id, data) values (30, $1)`, [BYTES]);
      const read = await client.query<{ data: Uint8Array }>(`select data from ${SCHEMA}.blobs where id = $1`, [30]);
      await client.query("rollback");
      assert.deepEqual(new Uint8Array(read.rows[0].data), BYTES);
      assert.deepEqual((await server.stats()).ws, { connections: 0, statements: 4 });
    } finally {
      await client.end();
    }
  });
});

describe("support server internals", (): void => {
  test("statement counter survives any framing", (): void => {
    const message = (type: string, body: string): Buffer => {
      const head: Buffer = Buffer.alloc(5);
      head.write(type, 0, "latin1");
      head.writeInt32BE(4 + Buffer.byteLength(body), 1);
      return Buffer.concat([head, Buffer.from(body)]);
    };
    const sslRequest: Buffer = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    const startupBody: Buffer = Buffer.from("user\0postgres\0database\0test\0\0");
    const startup: Buffer = Buffer.alloc(8);
    startup.writeInt32BE(8 + startupBody.length, 0);
    startup.writeInt32BE(196608, 4);
    // Bodies full of 'Q' and 'P' bytes must not be counted: only message types are.
    const rest: Buffer = Buffer.concat([
      startup,
      startupBody,
      message("Q", "select 'QQQQ PPPP'\0"),
      message("P", "\0select $1\0\0\0"),
      message("B", "PQPQPQ"),
      message("E", "\0\0\0\0\0"),
      message("S", ""),
      message("X", ""),
    ]);
    for (const size of [1, 2, 3, 5, 7, rest.length]) {
      const counter: FrontendStatementCounter = new FrontendStatementCounter();
      let total: number = counter.feed(sslRequest);
      counter.observeServer(Buffer.from("N")); // SSL refused: the stream stays plain text
      for (let i: number = 0; i < rest.length; i += size) total += counter.feed(rest.subarray(i, i + size));
      assert.equal(total, 2, `chunk size ${size}`);
    }
    // SSL accepted: the bytes are TLS records from then on and must not be guessed at.
    const tls: FrontendStatementCounter = new FrontendStatementCounter();
    tls.feed(sslRequest);
    tls.observeServer(Buffer.from("S"));
    assert.equal(tls.feed(rest), 0);
  });

  test("without raw text output, values are converted like Neon does", async (): Promise<void> => {
    const res: Response = await fetch(`${server.url}/sql`, {
      method: "POST",
      headers: { "Neon-Connection-String": databaseUrl() },
      body: JSON.stringify({
        query: "select $1::int as i, $2::jsonb as j, $3::text[] as a, true as b",
        params: [7, { k: [1] }, ["x,y", null]],
      }),
    });
    const body: { rows: unknown[]; rowAsArray: boolean } = await res.json() as { rows: unknown[]; rowAsArray: boolean };
    assert.equal(res.status, 200);
    assert.deepEqual(body.rows, [{ i: 7, j: { k: [1] }, a: ["x,y", null], b: true }]);
    assert.equal(body.rowAsArray, false);
  });

  test("setDelay slows each HTTP round trip", async (): Promise<void> => {
    await server.setDelay(150);
    try {
      const started: number = performance.now();
      await sql`select 1`;
      assert.ok(performance.now() - started >= 140);
    } finally {
      await server.setDelay(0);
    }
  });
});
