// Scale benchmark for gc(): 1,000,000 expired and 1,000,000 live sessions, collected while a
// reader keeps reading live sessions; then beego's single DELETE on the same data, with the same
// reader. One command (`npm run bench:gc`), one run, figures printed as a markdown table and
// written to bench/results-gc.json. Not a test.
//
// Options: --rows N (expired rows, and as many live ones; default 1000000), --batch-size N
// (default 1000), --baseline S (seconds of reader alone before each phase; default 8),
// --variant NAME (a candidate batch statement from VARIANTS below instead of gc()), --no-beego,
// --sweep A,B,… with --sizes N,N,… (every variant at every size, each on freshly seeded data,
// gc phase only; written to bench/results-gc-sweep.json), --pause-ms N (sleep between candidate
// batches), --out FILE (write the results there instead).
// DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { type GcProgress, PostgresStore, schemaSql } from "../mod.ts";
import { encodeData } from "../src/_codec.ts";

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "1000000" },
    "batch-size": { type: "string", default: "1000" },
    baseline: { type: "string", default: "8" },
    variant: { type: "string", default: "gc" },
    sweep: { type: "string" },
    sizes: { type: "string", default: "500,1000,2000,5000" },
    "pause-ms": { type: "string", default: "0" },
    "no-beego": { type: "boolean", default: false },
    out: { type: "string" },
  },
});
const ROWS = Number(args.rows);
const BATCH_SIZE = Number(args["batch-size"]);
const BASELINE_MS = Number(args.baseline) * 1000;
const PAUSE_MS = Number(args["pause-ms"]);
const WARMUP_MS = 3000;
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `bench_gc_${Math.random().toString(36).slice(2, 8)}`;
const TABLE = `${SCHEMA}.session`;
const NOW = "(now() AT TIME ZONE 'UTC')";
const RESULTS = fileURLToPath(new URL("./results-gc.json", import.meta.url));
const SWEEP_RESULTS = fileURLToPath(new URL("./results-gc-sweep.json", import.meta.url));

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
  const payload = encodeData(
    new Map<string, unknown>([["user", "ada"], ["roles", ["reader"]], ["csrf", "x".repeat(32)]]),
  );
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
      const pick = (q: number): number =>
        round(samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? NaN, 2);
      return {
        reads: samples.length,
        readsPerSecond: Math.round(samples.length / seconds),
        p50Ms: pick(0.5),
        p99Ms: pick(0.99),
        maxMs: round(samples.at(-1) ?? NaN, 2),
      };
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

// ---------------------------------------------------------------- batch statements to compare
// `gc` is the library's gc() (its statement lives in src/gc.ts); the others are candidate batch
// statements sent here in the same loop gc() runs, on one connection, unprepared. Each returns
// the rows it deleted as `n`. `$1` is the batch size.

const VARIANTS: Record<string, ((t: string) => string) | null> = {
  gc: null,
  // Today's src/gc.ts: lock a batch oldest first through the expiry index, delete it by ctid.
  "cte-order": (t) =>
    `WITH batch AS (SELECT ctid FROM ${t} WHERE session_expiry <= ${NOW} ORDER BY session_expiry LIMIT $1 FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM ${t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM batch)) AND session_expiry <= ${NOW} RETURNING 1)
SELECT count(*) AS n FROM gone`,
  // The same without the CTE around the batch.
  "any-order": (t) =>
    `WITH gone AS (DELETE FROM ${t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${t} WHERE session_expiry <= ${NOW} ORDER BY session_expiry LIMIT $1 FOR UPDATE SKIP LOCKED)) AND session_expiry <= ${NOW} RETURNING 1)
SELECT count(*) AS n FROM gone`,
  // No ORDER BY: any expired rows, in whatever order the plan finds them.
  "any-noorder": (t) =>
    `WITH gone AS (DELETE FROM ${t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${t} WHERE session_expiry <= ${NOW} LIMIT $1 FOR UPDATE SKIP LOCKED)) AND session_expiry <= ${NOW} RETURNING 1)
SELECT count(*) AS n FROM gone`,
  // No row locks in the sub-select: a row that a request is updating makes the DELETE wait for
  // that one statement, then re-check it (its ctid has moved, so it is left alone).
  "any-order-nolock": (t) =>
    `WITH gone AS (DELETE FROM ${t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${t} WHERE session_expiry <= ${NOW} ORDER BY session_expiry LIMIT $1)) AND session_expiry <= ${NOW} RETURNING 1)
SELECT count(*) AS n FROM gone`,
  // Keyset: each batch starts the index range where the previous one ended ($2, the largest
  // expiry it deleted, as text to keep the microseconds), so it does not walk again over the
  // index entries of rows already deleted (dead until VACUUM), which grow with every batch.
  // Rows a concurrent writer held (SKIP LOCKED) behind that point wait for the next run; the
  // loop's first batch starts at -infinity.
  "keyset": (t) =>
    `WITH gone AS (DELETE FROM ${t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${t} WHERE session_expiry >= $2::timestamp AND session_expiry <= ${NOW} ORDER BY session_expiry LIMIT $1 FOR UPDATE SKIP LOCKED)) AND session_expiry <= ${NOW} RETURNING session_expiry)
SELECT count(*) AS n, max(session_expiry)::text AS last FROM gone`,
  // By key instead of ctid: an index lookup per row instead of a TID scan.
  "key-order": (t) =>
    `WITH gone AS (DELETE FROM ${t} WHERE session_key IN (SELECT session_key FROM ${t} WHERE session_expiry <= ${NOW} ORDER BY session_expiry LIMIT $1 FOR UPDATE SKIP LOCKED) AND session_expiry <= ${NOW} RETURNING 1)
SELECT count(*) AS n FROM gone`,
};

interface Collection {
  variant: string;
  sql: string;
  batchSize: number;
  pauseMs: number;
  deleted: number;
  batches: number;
  seconds: number;
  rowsPerSecond: number;
  longestBatchMs: number;
  p50BatchMs: number;
  p99BatchMs: number;
  walMb: number;
  /**
   * CPU seconds of the collecting backend (from /proc, when PostgreSQL runs on this machine):
   * unlike the wall time, barely moved by other load on a shared machine.
   */
  backendCpuSeconds: number | null;
  backendCpuMicrosPerRow: number | null;
  readerWithoutGc: Latency;
  readerDuringGc: Latency;
  /** Reader p99 during the collection over its p99 alone. */
  p99Ratio: number;
}

/** User + system CPU seconds of a local process, or null when it is not on this machine. */
function backendCpu(pid: number): number | null {
  try {
    // Fields after the command name; utime and stime are the 12th and 13th, in clock ticks (100/s).
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/** Deletes every expired row with one variant; resolves to the time of every batch. */
async function collect(
  variant: string,
  store: PostgresStore,
  batchSize: number,
  pauseMs: number,
): Promise<{ deleted: number; batchMs: number[] }> {
  const batchMs: number[] = [];
  if (variant === "gc") {
    if (pauseMs > 0) throw new Error("--pause-ms applies to the candidate statements, not to gc()");
    const r = await store.gc({
      batchSize,
      maxDurationMs: Infinity,
      onBatch: (p: GcProgress): void => void batchMs.push(p.batchMs),
    });
    return { deleted: r.deleted, batchMs };
  }
  const text = VARIANTS[variant]!(TABLE);
  const keyset = text.includes("$2");
  let deleted = 0;
  let last = "-infinity";
  for (;;) {
    const t = performance.now();
    const { rows } = await gcPool.query(text, keyset ? [batchSize, last] : [batchSize]);
    batchMs.push(performance.now() - t);
    const n = Number(rows[0].n);
    if (keyset && rows[0].last !== null) last = rows[0].last;
    deleted += n;
    if (n < batchSize) return { deleted, batchMs };
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
}

let lastSeed: { seedMs: number; sizes: { table_bytes: number; index_bytes: number } } = {
  seedMs: NaN,
  sizes: { table_bytes: NaN, index_bytes: NaN },
};

/** Seeds, measures the reader alone, then collects with the reader running. */
async function runCollection(
  variant: string,
  batchSize: number,
  pauseMs: number,
  readStore: PostgresStore,
  gcStore: PostgresStore,
): Promise<Collection> {
  log(`seeding ${ROWS} expired + ${ROWS} live sessions`);
  const seedMs = await seed();
  const sizes = (await admin.query(
    `SELECT pg_table_size($1::regclass)::float8 AS table_bytes, pg_indexes_size($1::regclass)::float8 AS index_bytes`,
    [TABLE],
  )).rows[0];
  lastSeed = { seedMs, sizes };
  log(`seeded in ${(seedMs / 1000).toFixed(1)} s; warming up the reader`);
  await readerAlone(readStore, WARMUP_MS);
  const baseline = await readerAlone(readStore, BASELINE_MS);
  log(`${variant}, batch ${batchSize}${pauseMs ? `, pause ${pauseMs} ms` : ""}, reader running`);
  const pid = (await gcPool.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
  const cpuBefore = backendCpu(pid);
  const reader = startReader(readStore);
  const started = performance.now();
  const { result, walBytes: wal } = await walBytes(() => collect(variant, gcStore, batchSize, pauseMs));
  const ms = performance.now() - started;
  const cpuAfter = backendCpu(pid);
  const cpu = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
  const during = await reader.stop();
  const after = await counts();
  if (after.live !== ROWS || after.expired !== 0 || result.deleted !== ROWS) {
    throw new Error(`${variant} left ${JSON.stringify(after)} after deleting ${result.deleted}`);
  }
  const batchMs = [...result.batchMs].sort((a, b) => a - b);
  const c: Collection = {
    variant,
    sql: VARIANTS[variant]?.("session") ?? "gc() from src/gc.ts",
    batchSize,
    pauseMs,
    deleted: result.deleted,
    batches: batchMs.length,
    seconds: round(ms / 1000, 2),
    rowsPerSecond: Math.round(result.deleted / (ms / 1000)),
    longestBatchMs: round(batchMs.at(-1) ?? NaN, 1),
    p50BatchMs: round(batchMs[Math.floor(batchMs.length / 2)] ?? NaN, 1),
    p99BatchMs: round(batchMs[Math.floor(batchMs.length * 0.99)] ?? NaN, 1),
    walMb: round(wal / 2 ** 20, 1),
    backendCpuSeconds: cpu === null ? null : round(cpu, 2),
    backendCpuMicrosPerRow: cpu === null ? null : round(cpu * 1e6 / result.deleted, 1),
    readerWithoutGc: baseline,
    readerDuringGc: during,
    p99Ratio: round(during.p99Ms / baseline.p99Ms, 2),
  };
  log(
    `${variant} ${batchSize}: ${c.rowsPerSecond} rows/s, ${c.backendCpuMicrosPerRow} µs backend CPU per row, longest ${c.longestBatchMs} ms, reader p99 ${baseline.p99Ms} → ${during.p99Ms} ms (${c.p99Ratio}x)`,
  );
  return c;
}

async function main(): Promise<void> {
  const version = (await admin.query("SHOW server_version")).rows[0].server_version;
  // Other work on the machine skews every figure here: recorded so a reader can judge.
  const loadAtStart = round(os.loadavg()[0]!, 2);
  await admin.query(`CREATE SCHEMA ${SCHEMA}`);
  await admin.query(schemaSql(TABLE));
  const readStore = new PostgresStore({ client: readerPool, table: TABLE });
  const gcStore = new PostgresStore({ client: gcPool, table: TABLE });
  const machine = (): Parameters<typeof print>[0]["machine"] & { memoryGb: number } => ({
    cpus: os.cpus().length,
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    postgres: version,
    loadAverage1m: { atStart: loadAtStart, atEnd: round(os.loadavg()[0]!, 2) },
  });

  try {
    if (args.sweep) {
      const variants = args.sweep.split(",");
      for (const v of variants) {
        if (!(v in VARIANTS)) throw new Error(`unknown variant ${v}: one of ${Object.keys(VARIANTS).join(", ")}`);
      }
      const sizes = args.sizes.split(",").map(Number);
      const sweep: Collection[] = [];
      for (const size of sizes) {
        for (const v of variants) sweep.push(await runCollection(v, size, PAUSE_MS, readStore, gcStore));
      }
      const results = {
        date: new Date().toISOString(),
        machine: machine(),
        rows: { expired: ROWS, live: ROWS },
        sweep,
      };
      writeFileSync(args.out ?? SWEEP_RESULTS, JSON.stringify(results, null, 2) + "\n");
      printSweep(sweep);
      return;
    }

    // ---- gc(), or a candidate statement: batches of BATCH_SIZE ----
    const g = await runCollection(args.variant, BATCH_SIZE, PAUSE_MS, readStore, gcStore);
    const { seedMs, sizes } = lastSeed;

    let beegoResult: Record<string, unknown> | null = null;
    if (!args["no-beego"]) {
      // ---- beego: one DELETE over the whole table ----
      log("re-seeding the same data for beego's DELETE");
      await seed();
      await readerAlone(readStore, WARMUP_MS);
      log("reader alone");
      const baseline2 = await readerAlone(readStore, BASELINE_MS);
      log("beego's single DELETE, reader running");
      const beegoClient = await gcPool.connect();
      try {
        // current_timestamp - session_expiry casts the column to timestamptz in the session's zone.
        await beegoClient.query("SET TimeZone = 'UTC'");
        const pid = (await beegoClient.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
        const cpuBefore = backendCpu(pid);
        const reader2 = startReader(readStore);
        const t = performance.now();
        const { result, walBytes: wal } = await walBytes(() =>
          beegoClient.query(
            `DELETE FROM ${TABLE} WHERE EXTRACT(EPOCH FROM (current_timestamp - session_expiry)) > $1`,
            [0],
          )
        );
        const ms = performance.now() - t;
        const cpuAfter = backendCpu(pid);
        const during = await reader2.stop();
        beegoResult = {
          statement: "DELETE FROM session WHERE EXTRACT(EPOCH FROM (current_timestamp - session_expiry)) > $1",
          deleted: result.rowCount ?? 0,
          seconds: round(ms / 1000, 2),
          rowsPerSecond: Math.round((result.rowCount ?? 0) / (ms / 1000)),
          longestStatementMs: round(ms, 1),
          walMb: round(wal / 2 ** 20, 1),
          backendCpuMicrosPerRow: cpuBefore === null || cpuAfter === null
            ? null
            : round((cpuAfter - cpuBefore) * 1e6 / (result.rowCount ?? 1), 1),
          readerWithoutDelete: baseline2,
          readerDuringDelete: during,
        };
      } finally {
        beegoClient.release();
      }
      const afterBeego = await counts();
      if (afterBeego.live !== ROWS || afterBeego.expired !== 0) {
        throw new Error(`beego's DELETE left ${JSON.stringify(afterBeego)}`);
      }
    }

    const results = {
      date: new Date().toISOString(),
      machine: machine(),
      data: {
        expiredRows: ROWS,
        liveRows: ROWS,
        tableMb: round(sizes.table_bytes / 2 ** 20),
        indexesMb: round(sizes.index_bytes / 2 ** 20),
        seedSeconds: round(seedMs / 1000, 1),
      },
      gc: g,
      beegoDelete: beegoResult as Beego | null,
    };
    writeFileSync(args.out ?? RESULTS, JSON.stringify(results, null, 2) + "\n");
    print(results);
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
    await Promise.all([admin.end(), readerPool.end(), gcPool.end()]);
  }
}

function printSweep(sweep: Collection[]): void {
  const n = new Intl.NumberFormat("en-US");
  console.log(`
### Batch statements for gc(): ${n.format(ROWS)} expired + ${n.format(ROWS)} live sessions

| statement | batch | rows/s | backend CPU per row | longest statement | p50 / p99 statement | WAL | reader p99 alone → during | ratio |
|---|---|---|---|---|---|---|---|---|
${
    sweep.map((c) =>
      `| ${c.variant}${c.pauseMs ? ` (+${c.pauseMs} ms pause)` : ""} | ${c.batchSize} | ${
        n.format(c.rowsPerSecond)
      } | ${c.backendCpuMicrosPerRow} µs | ${c.longestBatchMs} ms | ${c.p50BatchMs} / ${c.p99BatchMs} ms | ${c.walMb} MB | ${c.readerWithoutGc.p99Ms} → ${c.readerDuringGc.p99Ms} ms | ${c.p99Ratio}× |`
    ).join("\n")
  }
`);
}

interface Beego {
  deleted: number;
  seconds: number;
  rowsPerSecond: number;
  longestStatementMs: number;
  walMb: number;
  backendCpuMicrosPerRow: number | null;
  readerWithoutDelete: Latency;
  readerDuringDelete: Latency;
}

function print(r: {
  machine: { cpus: number; postgres: string; node: string; loadAverage1m: { atStart: number; atEnd: number } };
  data: { expiredRows: number; liveRows: number; tableMb: number; indexesMb: number };
  gc: Collection;
  beegoDelete: Beego | null;
}): void {
  const n = new Intl.NumberFormat("en-US");
  const { gc: g, beegoDelete: b } = r;
  const lat = (l: Latency): string => `${l.p50Ms} / ${l.p99Ms} ms (${n.format(l.readsPerSecond)} reads/s)`;
  const row = (label: string, mine: string, beego: () => string): string =>
    `| ${label} | ${mine} |${b ? ` ${beego()} |` : ""}`;
  const name = g.variant === "gc" ? `\`gc()\`, batchSize ${g.batchSize}` : `${g.variant}, batch ${g.batchSize}`;
  console.log(`
### gc() at scale: ${n.format(r.data.expiredRows)} expired + ${n.format(r.data.liveRows)} live sessions

PostgreSQL ${r.machine.postgres}, ${r.machine.cpus} CPUs (load average ${r.machine.loadAverage1m.atStart} at start, ${r.machine.loadAverage1m.atEnd} at end), Node ${r.machine.node}; table ${r.data.tableMb} MB, indexes ${r.data.indexesMb} MB.
Reader: one connection reading random live sessions with \`store.read()\` in a closed loop.

| | ${name} |${b ? " beego's single `DELETE` |" : ""}
|---|---|${b ? "---|" : ""}
${
    row("rows deleted", `${n.format(g.deleted)} in ${n.format(g.batches)} statements`, () =>
      `${n.format(b!.deleted)} in 1 statement`)
  }
${row("wall time", `${g.seconds} s`, () => `${b!.seconds} s`)}
${row("rows deleted per second", n.format(g.rowsPerSecond), () => n.format(b!.rowsPerSecond))}
${
    row("longest single statement (locks held, transaction open)", `${g.longestBatchMs} ms`, () =>
      `${n.format(b!.longestStatementMs)} ms`)
  }
${row("WAL written", `${g.walMb} MB`, () => `${b!.walMb} MB`)}
${row("CPU of the deleting backend per row", `${g.backendCpuMicrosPerRow} µs`, () => `${b!.backendCpuMicrosPerRow} µs`)}
${row("reader p50 / p99, alone", lat(g.readerWithoutGc), () => lat(b!.readerWithoutDelete))}
${row("reader p50 / p99, during the collection", lat(g.readerDuringGc), () => lat(b!.readerDuringDelete))}
`);
}

// An interrupted run still drops its schema (a seeded table is hundreds of megabytes).
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    const cleanup = new pg.Client({ connectionString: DATABASE_URL });
    cleanup.connect()
      .then(() =>
        cleanup.query(
          `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%${SCHEMA}%' AND pid <> pg_backend_pid()`,
        )
      )
      .then(() => cleanup.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`))
      .finally(() => process.exit(130));
  });
}

await main();
