// Scale benchmark for gc(): 1,000,000 expired and 1,000,000 live sessions, collected while a
// reader keeps reading live sessions; then beego's single DELETE on the same data, with the same
// reader. One command (`npm run bench:gc`), one run, figures printed as a markdown table and
// written to bench/results-gc.json. Not a test.
//
// Options: --rows N (expired rows, and as many live ones; default 1000000), --batch-size N
// (default 1000), --baseline S (seconds of reader alone before each phase; default 8).
// DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import os from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { gc, type GcProgress, PostgresStore, schemaSql } from "../mod.ts";
import { encodeData } from "../src/codec.ts";

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "1000000" },
    "batch-size": { type: "string", default: "1000" },
    baseline: { type: "string", default: "8" },
  },
});
const ROWS = Number(args.rows);
const BATCH_SIZE = Number(args["batch-size"]);
const BASELINE_MS = Number(args.baseline) * 1000;
const WARMUP_MS = 3000;
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `bench_gc_${Math.random().toString(36).slice(2, 8)}`;
const TABLE = `${SCHEMA}.session`;
const NOW = "(now() AT TIME ZONE 'UTC')";
const RESULTS = fileURLToPath(new URL("./results-gc.json", import.meta.url));

// Row i (1..2*ROWS): even i expired, odd i live, interleaved in the heap as sessions of different
// ages are. A token is the base64url SHA-256 of "bench<i>", so the reader can name live rows.
const TOKEN_SQL = "rtrim(translate(encode(sha256(convert_to('bench' || i, 'UTF8')), 'base64'), '+/', '-_'), '=')";
const tokenOf = (i: number): string => createHash("sha256").update(`bench${i}`).digest("base64url");

const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
const readerPool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
const gcPool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });

function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function seed(): Promise<number> {
  const started = performance.now();
  await admin.query(`TRUNCATE ${TABLE}`);
  const payload = encodeData(new Map<string, unknown>([["user", "ada"], ["roles", ["reader"]], ["csrf", "x".repeat(32)]]));
  // Two halves on two connections: the server has two cores to spend on sha256 and index inserts.
  const half = ROWS; // 2*ROWS rows in all
  await Promise.all([0, 1].map((part: number) =>
    admin.query(
      `INSERT INTO ${TABLE} (session_key, session_data, session_expiry)
       SELECT encode(sha256(convert_to(${TOKEN_SQL}, 'UTF8')), 'hex'),
              int8send((extract(epoch FROM now()) * 1000000)::int8) || $1::bytea,
              CASE WHEN i % 2 = 0 THEN ${NOW} - (1 + i % 86400) * interval '1 second'
                   -- Within touchAfter of a full ttl: reads do not roll the expiry forward.
                   ELSE ${NOW} + interval '7 days' - (i % 1800) * interval '1 second' END
       FROM generate_series($2::int, $3::int) AS i`,
      [payload, part * half + 1, (part + 1) * half],
    )
  ));
  await admin.query(`VACUUM ANALYZE ${TABLE}`);
  await admin.query("CHECKPOINT");
  return performance.now() - started;
}

interface Latency {
  reads: number;
  readsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** One closed-loop reader of random live sessions through the store; stop() gives its figures. */
function startReader(store: PostgresStore): { stop(): Promise<Latency> } {
  const samples: number[] = [];
  let running = true;
  const started = performance.now();
  const loop = (async (): Promise<void> => {
    while (running) {
      const i = 2 * Math.floor(Math.random() * ROWS) + 1;
      const t = performance.now();
      const session = await store.read(tokenOf(i));
      samples.push(performance.now() - t);
      if (!session) throw new Error(`live session ${i} not found`);
    }
  })();
  return {
    async stop(): Promise<Latency> {
      running = false;
      await loop;
      const seconds = (performance.now() - started) / 1000;
      samples.sort((a, b) => a - b);
      const pick = (q: number): number => round(samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? NaN, 2);
      return { reads: samples.length, readsPerSecond: Math.round(samples.length / seconds), p50Ms: pick(0.5), p99Ms: pick(0.99), maxMs: round(samples.at(-1) ?? NaN, 2) };
    },
  };
}

async function readerAlone(store: PostgresStore, ms: number): Promise<Latency> {
  const reader = startReader(store);
  await new Promise((r) => setTimeout(r, ms));
  return reader.stop();
}

async function walBytes<T>(work: () => Promise<T>): Promise<{ result: T; walBytes: number }> {
  const before = (await admin.query("SELECT pg_current_wal_lsn() AS lsn")).rows[0].lsn;
  const result = await work();
  const { rows } = await admin.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::float8 AS bytes", [before]);
  return { result, walBytes: rows[0].bytes };
}

async function counts(): Promise<{ live: number; expired: number }> {
  const { rows } = await admin.query(
    `SELECT count(*) FILTER (WHERE session_expiry > ${NOW})::int AS live,
            count(*) FILTER (WHERE session_expiry <= ${NOW})::int AS expired FROM ${TABLE}`,
  );
  return rows[0];
}

function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function main(): Promise<void> {
  const version = (await admin.query("SHOW server_version")).rows[0].server_version;
  // Other work on the machine skews every figure here: recorded so a reader can judge.
  const loadAtStart = round(os.loadavg()[0]!, 2);
  await admin.query(`CREATE SCHEMA ${SCHEMA}`);
  await admin.query(schemaSql(TABLE));
  const readStore = new PostgresStore({ client: readerPool, table: TABLE });
  const gcStore = new PostgresStore({ client: gcPool, table: TABLE });

  try {
    // ---- gc(): batches of BATCH_SIZE ----
    log(`seeding ${ROWS} expired + ${ROWS} live sessions`);
    const seedMs = await seed();
    const sizes = (await admin.query(
      `SELECT pg_table_size($1::regclass)::float8 AS table_bytes, pg_indexes_size($1::regclass)::float8 AS index_bytes`,
      [TABLE],
    )).rows[0];
    log(`seeded in ${(seedMs / 1000).toFixed(1)} s; warming up the reader`);
    await readerAlone(readStore, WARMUP_MS);
    log("reader alone");
    const baseline = await readerAlone(readStore, BASELINE_MS);
    log(`gc() with batchSize ${BATCH_SIZE}, reader running`);
    const batchMs: number[] = [];
    const reader = startReader(readStore);
    const started = performance.now();
    const { result: gcResult, walBytes: gcWal } = await walBytes(() =>
      gc(gcStore, { batchSize: BATCH_SIZE, maxDurationMs: Infinity, onBatch: (p: GcProgress): void => void batchMs.push(p.batchMs) })
    );
    const gcMs = performance.now() - started;
    const duringGc = await reader.stop();
    const afterGc = await counts();
    if (afterGc.live !== ROWS || afterGc.expired !== 0 || gcResult.deleted !== ROWS) {
      throw new Error(`gc() left ${JSON.stringify(afterGc)} after deleting ${gcResult.deleted}`);
    }
    batchMs.sort((a, b) => a - b);

    // ---- beego: one DELETE over the whole table ----
    log("re-seeding the same data for beego's DELETE");
    await seed();
    await readerAlone(readStore, WARMUP_MS);
    log("reader alone");
    const baseline2 = await readerAlone(readStore, BASELINE_MS);
    log("beego's single DELETE, reader running");
    const beegoClient = await gcPool.connect();
    let beego: { deleted: number; ms: number; walBytes: number; duringDelete: Latency };
    try {
      // current_timestamp - session_expiry casts the column to timestamptz in the session's zone.
      await beegoClient.query("SET TimeZone = 'UTC'");
      const reader2 = startReader(readStore);
      const t = performance.now();
      const { result, walBytes: wal } = await walBytes(() =>
        beegoClient.query(`DELETE FROM ${TABLE} WHERE EXTRACT(EPOCH FROM (current_timestamp - session_expiry)) > $1`, [0])
      );
      const ms = performance.now() - t;
      beego = { deleted: result.rowCount ?? 0, ms, walBytes: wal, duringDelete: await reader2.stop() };
    } finally {
      beegoClient.release();
    }
    const afterBeego = await counts();
    if (afterBeego.live !== ROWS || afterBeego.expired !== 0) throw new Error(`beego's DELETE left ${JSON.stringify(afterBeego)}`);

    const results = {
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        memoryGb: round(os.totalmem() / 2 ** 30, 1),
        node: process.version,
        postgres: version,
        loadAverage1m: { atStart: loadAtStart, atEnd: round(os.loadavg()[0]!, 2) },
      },
      data: {
        expiredRows: ROWS,
        liveRows: ROWS,
        tableMb: round(sizes.table_bytes / 2 ** 20),
        indexesMb: round(sizes.index_bytes / 2 ** 20),
        seedSeconds: round(seedMs / 1000, 1),
      },
      gc: {
        batchSize: BATCH_SIZE,
        deleted: gcResult.deleted,
        batches: gcResult.batches,
        seconds: round(gcMs / 1000, 2),
        rowsPerSecond: Math.round(gcResult.deleted / (gcMs / 1000)),
        longestBatchMs: round(batchMs.at(-1) ?? NaN, 1),
        p50BatchMs: round(batchMs[Math.floor(batchMs.length / 2)] ?? NaN, 1),
        p99BatchMs: round(batchMs[Math.floor(batchMs.length * 0.99)] ?? NaN, 1),
        walMb: round(gcWal / 2 ** 20, 1),
        readerWithoutGc: baseline,
        readerDuringGc: duringGc,
      },
      beegoDelete: {
        statement: "DELETE FROM session WHERE EXTRACT(EPOCH FROM (current_timestamp - session_expiry)) > $1",
        deleted: beego.deleted,
        seconds: round(beego.ms / 1000, 2),
        rowsPerSecond: Math.round(beego.deleted / (beego.ms / 1000)),
        longestStatementMs: round(beego.ms, 1),
        walMb: round(beego.walBytes / 2 ** 20, 1),
        readerWithoutDelete: baseline2,
        readerDuringDelete: beego.duringDelete,
      },
    };
    writeFileSync(RESULTS, JSON.stringify(results, null, 2) + "\n");
    print(results);
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
    await Promise.all([admin.end(), readerPool.end(), gcPool.end()]);
  }
}

function print(r: {
  machine: { cpus: number; postgres: string; node: string; loadAverage1m: { atStart: number; atEnd: number } };
  data: { expiredRows: number; liveRows: number; tableMb: number; indexesMb: number };
  gc: { batchSize: number; batches: number; deleted: number; seconds: number; rowsPerSecond: number; longestBatchMs: number; walMb: number; readerWithoutGc: Latency; readerDuringGc: Latency };
  beegoDelete: { deleted: number; seconds: number; rowsPerSecond: number; longestStatementMs: number; walMb: number; readerWithoutDelete: Latency; readerDuringDelete: Latency };
}): void {
  const n = new Intl.NumberFormat("en-US");
  const { gc: g, beegoDelete: b } = r;
  const lat = (l: Latency): string => `${l.p50Ms} / ${l.p99Ms} ms (${n.format(l.readsPerSecond)} reads/s)`;
  console.log(`
### gc() at scale: ${n.format(r.data.expiredRows)} expired + ${n.format(r.data.liveRows)} live sessions

PostgreSQL ${r.machine.postgres}, ${r.machine.cpus} CPUs (load average ${r.machine.loadAverage1m.atStart} at start, ${r.machine.loadAverage1m.atEnd} at end), Node ${r.machine.node}; table ${r.data.tableMb} MB, indexes ${r.data.indexesMb} MB.
Reader: one connection reading random live sessions with \`store.read()\` in a closed loop.

| | \`gc()\`, batchSize ${g.batchSize} | beego's single \`DELETE\` |
|---|---|---|
| rows deleted | ${n.format(g.deleted)} in ${n.format(g.batches)} statements | ${n.format(b.deleted)} in 1 statement |
| wall time | ${g.seconds} s | ${b.seconds} s |
| rows deleted per second | ${n.format(g.rowsPerSecond)} | ${n.format(b.rowsPerSecond)} |
| longest single statement (locks held, transaction open) | ${g.longestBatchMs} ms | ${n.format(b.longestStatementMs)} ms |
| WAL written | ${g.walMb} MB | ${b.walMb} MB |
| reader p50 / p99, alone | ${lat(g.readerWithoutGc)} | ${lat(b.readerWithoutDelete)} |
| reader p50 / p99, during the collection | ${lat(g.readerDuringGc)} | ${lat(b.readerDuringDelete)} |
`);
}

await main();
