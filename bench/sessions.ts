// Session benchmark (`npm run bench`): pgsession side by side with express-session +
// connect-pg-simple and with the bare-query limit, on the local PostgreSQL, in one run so the
// ratios are taken under the same conditions. Writes bench/results.json and bench/chart.svg and
// prints the figures as markdown. Not a test: targets are reported, not asserted. How to read
// the output: bench/README.md.
//
// 1. statements per request per scenario, counted at the database client;
// 2. throughput and latency under load: every server in its own process, autocannon in another,
//    pool of 10 connections each, 1000 seeded sessions per system, runs
//    interleaved, rotated every round and reversed every other round. pgsession runs with
//    default options. pgsession and the limit (the same statements with no session library) are
//    fetch handlers served by @hono/node-server, so they differ only by the library; the limit on
//    bare node:http shows what the adapter itself costs; express serves express. Two more rows: an A/A copy (a second
//    pgsession server process on the same cookies: the run's noise floor) and a cache-miss read
//    (a third pgsession process with the same schedule, whose every read carries the signed cookie
//    of a session no process has seen, minted beforehand, so no per-process cache can hit; its
//    table holds the seeded sessions, which it modifies, and every minted one). CPU per request is read from /proc for the server, its
//    PostgreSQL backends (born during the run, counted whole: pools close idle connections after 1 s),
//    the whole cluster and the load generator;
// 3. latency per scenario with a fixed delay per database round trip (an edge region); the
//    read-only and modify requests again with the snapshot on (issue 18), and the browsing trace
//    (bench/trace.json, see bench/_trace.ts) replayed without and with it on a virtual clock;
// 4. codec: cbor-x vs JSON on three payloads;
// 5. bundle: a Worker with pgsession vs the same Worker with only the Neon driver, and without
//    the snapshot module.
//
// bench/results.json: date, machine, setup, statements, throughput[mode][system] ({ rps, p50Ms,
// p99Ms, errors, non2xx, rpsPerRound }), ratios[mode] (medians of per-round ratios), targets,
// edge, codec, bundle, runs; and, since issue 20:
// - ratios[mode].pgsessionPgOverCopy: the A/A ratio (pgsession over its second copy);
//   ratios.readOnly.pgsessionPgMissOverHit: req/s of the cache-miss read over the hit read;
// - ratioRounds[mode][ratio]: every round's ratio, whose median is ratios[mode][ratio];
// - noise[mode]: { aaMedian, aaPerRound, aaMaxDeviation }: the A/A ratio's rounds and their
//   largest distance from 1, the noise floor printed beside every ratio;
// - cpuPerRequest[mode][system]: µs of CPU per request, medians of the rounds, { server (all
//   threads), serverMainThread, postgres (the backends of that server's connections, found by
//   application_name), postgresCluster (every PostgreSQL process: background work and any other
//   client included), load (autocannon), endpoint (Neon HTTP only: the local /sql process),
//   perRound }; null where /proc is unreadable;
// - cacheMiss: { serverCpuOverHit, serverCpuOverHitPerRound, serverAndPostgresCpuOverHit,
//   aaServerCpu, aaServerCpuMaxDeviation, sessionsPerRun }: CPU per request
//   of the cache-miss read (pgsessionPgMiss) over pgsessionPg's hit read, median of the rounds'
//   ratios; two processes, as in the A/A row, whose deviation is its noise;
// - targets.*: { target, value, met, aaMaxDeviation } (atMost: true for the cache-miss CPU);
// - runs[].cpu: the CPU per request of each run; setup.missRate.
// And since issue 18 (written to bench/snapshot.svg too):
// - edge.readOnlySnapshot, edge.modifySnapshot: { pgsessionRoundTrips, pgsessionP50Ms }: Neon HTTP
//   at the same delay as edge.readOnly/edge.modify, default options plus `snapshot: { maxAge: 5 }`,
//   the snapshot fresh (the session was created just before); round trips: the most of any sample;
// - edge.browsingTrace: { requests, writes, views, browsers, spanMinutes, maxAge, clock,
//   clockLagMs (the most a request started after its time in the trace), sameAnswers (both sides
//   answered every request alike), floorRoundTripsPerRequest (the fewest any scheme bounded by
//   maxAge could send: a round trip per write and per read more than maxAge after the browser's
//   last database visit), withoutSnapshot and withSnapshot: { roundTripsPerRequest,
//   p50Ms, p95Ms, requestsByRoundTrips }, goal (0.2 round trips per request), met };
// - bundle.workerWithoutSnapshotModule: the Worker with src/_snapshot.ts stubbed out;
//   bundle.snapshotModule: what that module adds, { minifiedBytes, gzipBytes };
// - targets.browsingTraceRoundTripsPerRequest (atMost).
//
// Options: --seconds N (per load run, default 3, or BENCH_SECONDS), --rounds N (default 4),
// --warmup N (seconds per system and mode, default 2), --connections N (default 20), --sessions N
// (default 1000), --delay MS (default 10), --samples N (edge samples per scenario, default 11),
// --miss-rate N (unseen sessions minted per second of a cache-miss run, default 15000: above the
// read rate, or cookies repeat and the log says so), --variants (also the unprepared limit on
// node:http, pgsession with `prepare: true` and without secrets), --baseline DIR (also pgsession
// from another checkout's mod.ts, e.g. `git archive` of main with node_modules linked, on the same
// table: ratios new / old in one run), --redraw (only redraw bench/chart.svg and reprint the tables
// from bench/results.json).
// DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test; BENCH_CPU_PROF=<dir> profiles
// the pgsession-pg server process.
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import process from "node:process";
import readline from "node:readline";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { serve } from "@hono/node-server";
import * as esbuild from "esbuild";
import pg from "pg";
import { PostgresStore, schemaSql, withSession } from "../mod.ts";
import { decodeData, encodeData } from "../src/_codec.ts";
import { configureNeon, startSupportServer, type SupportServer } from "../tests/support/harness.ts";
import { countingPool, expressApp, type FetchHandler, pgsessionHandler, POOL_SIZE, SECRET } from "./_apps.ts";
import { drawChart } from "./_chart.ts";
import { clusterCpu, cpuBetween, cpuByPid, findChild, mainThreadCpu, parentOf, processCpu } from "./_cpu.ts";
import { startDelayProxy } from "./_delay_proxy.ts";
import { Jar, type Trace, VirtualClock } from "./_trace.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: process.env.BENCH_SECONDS ?? "3" },
    rounds: { type: "string", default: "4" },
    warmup: {
      type: "string",
      default: process.env.BENCH_SECONDS ? String(Math.min(2, Number(process.env.BENCH_SECONDS))) : "2",
    },
    connections: { type: "string", default: "20" },
    sessions: { type: "string", default: "1000" },
    delay: { type: "string", default: "10" },
    samples: { type: "string", default: "11" },
    "miss-rate": { type: "string", default: "15000" },
    variants: { type: "boolean", default: false },
    redraw: { type: "boolean", default: false },
    baseline: { type: "string" },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const WARMUP = Number(args.warmup);
const CONNECTIONS = Number(args.connections);
const SESSIONS = Number(args.sessions);
const DELAY_MS = Number(args.delay);
const SAMPLES = Number(args.samples);
const MISS_RATE = Number(args["miss-rate"]);
/** The snapshot's maxAge in the edge rows and the browsing trace, seconds. */
const SNAPSHOT_MAX_AGE = 5;
/** Round trips per request the browsing trace should stay within, with the snapshot (issue 18). */
const TRACE_GOAL = 0.2;
const TRACE = JSON.parse(readFileSync(new URL("./trace.json", import.meta.url), "utf8")) as Trace;
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `bench_s_${Math.random().toString(36).slice(2, 8)}`;
const TABLE = `${SCHEMA}.session`;
const MISS_SCHEMA = `${SCHEMA}_m`;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));
const HONO_NODE_SERVER =
  (JSON.parse(readFileSync(path.join(ROOT, "node_modules/@hono/node-server/package.json"), "utf8")) as {
    version: string;
  }).version;

const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
const cleanups: (() => Promise<unknown>)[] = [];

function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const round1 = (n: number): number => round(n, 1);

/** The PostgreSQL application_name of a system's connections. */
const appName = (key: string): string => `bench_${key}`;

/** CPU per request of one run, µs: null where it could not be read. */
interface CpuPerRequest {
  /** The server process, all threads (libuv's pool included). */
  server: number | null;
  /** The server's main thread: the event loop alone. */
  serverMainThread: number | null;
  /** The PostgreSQL backends of the server's connections (found by application_name). */
  postgres: number | null;
  /** The whole PostgreSQL cluster, background processes and every other client included. */
  postgresCluster: number | null;
  /** The load generator (autocannon). */
  load: number | null;
  /** Neon HTTP only: the local /sql endpoint's process, which holds that system's pool. */
  endpoint?: number | null;
}

/**
 * `n` sessions as a browser's first visit leaves them, written straight to `table`: each a copy
 * of `like`'s row under a new token's key, and the signed cookie for that token.
 */
async function mintSessions(table: string, like: string, n: number): Promise<string[]> {
  const name = like.slice(0, like.indexOf("="));
  const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");
  const template = sha256(decodeURIComponent(like.slice(name.length + 1)).split(".")[0]!);
  const tokens = Array.from({ length: n }, () => randomBytes(32).toString("base64url"));
  for (let i = 0; i < n; i += 10_000) {
    const { rowCount } = await admin.query(
      `INSERT INTO ${table}
       SELECT (jsonb_populate_record(NULL::${table}, to_jsonb(tpl) || jsonb_build_object('session_key', k))).*
         FROM (SELECT * FROM ${table} WHERE session_key = $2) tpl, unnest($1::text[]) k`,
      [tokens.slice(i, i + 10_000).map(sha256), template],
    );
    if (rowCount !== Math.min(10_000, n - i)) throw new Error(`minted ${rowCount} sessions, not ${n - i}`);
  }
  return tokens.map((t) => `${name}=${t}.${createHmac("sha256", SECRET).update(t).digest("base64url")}`);
}

// ---------------------------------------------------------------- systems under test, in-process

interface Client {
  /**
   * One request; `cookie` is a Cookie header or undefined. Answers the first cookie set (the
   * session cookie) and every cookie set, as a Cookie header (with a snapshot: both).
   */
  request(path: string, cookie?: string): Promise<{ status: number; cookie: string | null; cookies: string | null }>;
  /** Statements (or round trips) sent so far. */
  count(): Promise<number>;
}

function firstCookie(res: Response): string | null {
  const set = res.headers.getSetCookie()[0];
  if (!set) return null;
  const pair = set.split(";")[0]!;
  return pair.endsWith("=") ? null : pair;
}

function allCookies(res: Response): string | null {
  const pairs = res.headers.getSetCookie().map((set) => set.split(";")[0]!).filter((pair) => !pair.endsWith("="));
  return pairs.length ? pairs.join("; ") : null;
}

function fetchClient(base: string, count: () => Promise<number>): Client {
  return {
    async request(path, cookie) {
      const res = await fetch(base + path, { headers: cookie ? { cookie } : {} });
      await res.arrayBuffer();
      return { status: res.status, cookie: firstCookie(res), cookies: allCookies(res) };
    },
    count,
  };
}

function handlerClient(handler: FetchHandler, count: () => Promise<number>): Client {
  return {
    async request(path, cookie) {
      const res = await handler(new Request(`http://127.0.0.1${path}`, { headers: cookie ? { cookie } : {} }));
      await res.arrayBuffer();
      return { status: res.status, cookie: firstCookie(res), cookies: allCookies(res) };
    },
    count,
  };
}

async function listen(app: http.RequestListener): Promise<string> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function pool(connectionString = DATABASE_URL): pg.Pool {
  const p = new pg.Pool({ connectionString, max: POOL_SIZE });
  cleanups.push(() => p.end());
  return p;
}

/** A signed cookie with one signature character changed: well-formed, badly signed. */
function forge(cookie: string): string {
  // A letter of the signature that is not part of a %XX escape.
  let at = cookie.lastIndexOf(".") + 1;
  while (!/[A-Za-z]/.test(cookie[at]!) || cookie[at - 1] === "%" || cookie[at - 2] === "%") at++;
  return cookie.slice(0, at) + (cookie[at] === "A" ? "B" : "A") + cookie.slice(at + 1);
}

// ---------------------------------------------------------------- 1. statements per request

interface Scenario {
  key: string;
  label: string;
  path: string;
  cookie: "none" | "valid" | "forged";
}

const SCENARIOS: Scenario[] = [
  { key: "noCookie", label: "no cookie, session unused", path: "/unused", cookie: "none" },
  { key: "cookieUnused", label: "cookie, session unused", path: "/unused", cookie: "valid" },
  { key: "readOnly", label: "read-only", path: "/read", cookie: "valid" },
  { key: "modify", label: "modify (counter + 1)", path: "/modify", cookie: "valid" },
  { key: "newSession", label: "new session (no cookie, sets a value)", path: "/modify", cookie: "none" },
  { key: "regenerate", label: "regenerate (sign-in: new id, set user)", path: "/regenerate", cookie: "valid" },
  { key: "destroy", label: "destroy (sign-out)", path: "/destroy", cookie: "valid" },
  { key: "forged", label: "forged cookie (bad signature), read", path: "/read", cookie: "forged" },
];

async function cookieFor(client: Client, kind: Scenario["cookie"]): Promise<string | undefined> {
  if (kind === "none") return undefined;
  const { cookie } = await client.request("/modify");
  if (!cookie) throw new Error("no Set-Cookie from /modify");
  return kind === "forged" ? forge(cookie) : cookie;
}

/** Statements the scenario's request sends (the setup request that makes its cookie excluded). */
async function measureStatements(client: Client, s: Scenario): Promise<number> {
  const cookie = await cookieFor(client, s.cookie);
  const before = await client.count();
  const { status } = await client.request(s.path, cookie);
  if (status !== 200) throw new Error(`${s.path}: HTTP ${status}`);
  return (await client.count()) - before;
}

// ---------------------------------------------------------------- child processes

interface Child {
  port: number;
  proc: ChildProcess;
  close(): Promise<void>;
}

function startChild(
  script: string,
  argv: string[],
  env: Record<string, string> = {},
  nodeFlags: string[] = [],
): Promise<Child> {
  const proc = spawn(process.execPath, [...nodeFlags, "--import", "tsx", script, ...argv], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => proc.once("close", () => resolve()));
  const close = async (): Promise<void> => {
    proc.stdin!.end();
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = /^READY (\d+)\n/.exec(out);
      if (!m) return;
      proc.stdout!.off("data", onData);
      proc.off("exit", onExit);
      resolve({ port: Number(m[1]), proc, close });
    };
    const onExit = (code: number | null): void =>
      reject(new Error(`${script} ${argv.join(" ")} exited with ${code}: ${out}`));
    proc.stdout!.on("data", onData);
    proc.once("exit", onExit);
  });
}

interface Load {
  pid: number;
  run(cmd: { url: string; cookies: string[]; connections: number; seconds: number }): Promise<LoadResult>;
  close(): Promise<void>;
}

interface LoadResult {
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

function startLoad(): Load {
  const proc = spawn(process.execPath, ["--import", "tsx", here("./_load.ts")], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => proc.once("close", () => resolve()));
  const lines = readline.createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return {
    pid: proc.pid!,
    async run(cmd) {
      proc.stdin!.write(JSON.stringify(cmd) + "\n");
      const { value, done } = await lines.next();
      if (done) throw new Error("load generator exited");
      return JSON.parse(value as string) as LoadResult;
    },
    async close() {
      proc.stdin!.end();
      await exited;
    },
  };
}

// ---------------------------------------------------------------- 4. codec

function codecBench(): Record<string, unknown>[] {
  const day = 86_400_000;
  const t0 = Date.UTC(2026, 10, 1);
  const payloads: { name: string; data: Map<string, unknown> }[] = [
    {
      name: "small login",
      data: new Map<string, unknown>([
        ["userId", 48213],
        ["user", "ada@example.com"],
        ["roles", ["reader", "editor"]],
        ["csrf", "q3Jx9vT0cW8mZpL2rN5sYbK7uE1hDaGf"],
        ["signedInAt", new Date(t0)],
      ]),
    },
    {
      name: "cart with Dates and Maps",
      data: new Map<string, unknown>([
        ["userId", 48213],
        [
          "cart",
          new Map(
            Array.from(
              { length: 20 },
              (
                _,
                i,
              ) => [`SKU-${10_000 + i}`, {
                qty: 1 + (i % 3),
                priceCents: 1299 + i * 100,
                addedAt: new Date(t0 + i * day),
              }],
            ),
          ),
        ],
        ["coupons", new Set(["WELCOME10", "FREESHIP"])],
        ["currency", "EUR"],
        ["updatedAt", new Date(t0 + 20 * day)],
      ]),
    },
    {
      name: "30 KB blob",
      data: new Map<string, unknown>([["userId", 48213], [
        "draft",
        Uint8Array.from({ length: 30_720 }, (_, i) => (i * 2654435761) >>> 24),
      ]]),
    },
  ];
  // What a JSON store does with these: Map → object, Set → array, bytes → base64, Date → ISO
  // string. Decoding does not restore any of them (lossy).
  const replacer = (_k: string, v: unknown): unknown =>
    v instanceof Map
      ? Object.fromEntries(v)
      : v instanceof Set
      ? [...v]
      : v instanceof Uint8Array
      ? Buffer.from(v).toString("base64")
      : v;
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const json = {
    encode: (d: Map<string, unknown>): Uint8Array => enc.encode(JSON.stringify(Object.fromEntries(d), replacer)),
    decode: (b: Uint8Array): unknown => JSON.parse(dec.decode(b)),
  };
  const cbor = { encode: encodeData, decode: (b: Uint8Array): unknown => decodeData(b, 1 << 20) };
  const time = (
    codec: { encode(d: Map<string, unknown>): Uint8Array; decode(b: Uint8Array): unknown },
    data: Map<string, unknown>,
  ): number => {
    const once = (): void => void codec.decode(codec.encode(data));
    for (let i = 0; i < 300; i++) once();
    // Best of 5 batches of ~50 ms each: least disturbed by the neighbours.
    let best = Infinity;
    for (let b = 0; b < 5; b++) {
      let n = 0;
      const start = performance.now();
      while (performance.now() - start < 50) {
        for (let i = 0; i < 20; i++) once();
        n += 20;
      }
      best = Math.min(best, (performance.now() - start) / n);
    }
    return round(best * 1000, 1);
  };
  return payloads.map(({ name, data }) => {
    const back = cbor.decode(cbor.encode(data)) as Map<string, unknown>;
    const lossless =
      JSON.stringify([...back].map(([k, v]) => [k, v instanceof Map ? [...v] : v instanceof Set ? [...v] : v])) ===
        JSON.stringify([...data].map(([k, v]) => [k, v instanceof Map ? [...v] : v instanceof Set ? [...v] : v]));
    return {
      payload: name,
      cborBytes: cbor.encode(data).byteLength,
      jsonBytes: json.encode(data).byteLength,
      cborMicros: time(cbor, data),
      jsonMicros: time(json, data),
      cborRoundTripsTypes: lossless && back instanceof Map,
    };
  });
}

// ---------------------------------------------------------------- 5. bundle

/**
 * What the Worker is without the snapshot module: src/_snapshot.ts replaced by three stubs with
 * the same names (a snapshot never opens, never seals), so the difference is that module's share.
 * The snapshot's few lines in sessions.ts and the request session stay in both.
 */
const withoutSnapshotModule: esbuild.Plugin = {
  name: "without-snapshot-module",
  setup(build) {
    build.onResolve({ filter: /(^|\/)_snapshot\.ts$/ }, (a) => ({ path: a.path, namespace: "stub" }));
    build.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
      contents: "export const checkSnapshotMaxAge = (n) => n;\n" +
        "export const openSnapshot = async () => null;\n" +
        "export const sealSnapshot = async () => null;\n",
      loader: "js",
    }));
  },
};

async function bundleSize(
  entry: string,
  plugins: esbuild.Plugin[] = [],
): Promise<{ minifiedBytes: number; gzipBytes: number }> {
  const result = await esbuild.build({
    plugins,
    absWorkingDir: ROOT,
    entryPoints: [here(entry)],
    bundle: true,
    write: false,
    minify: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    mainFields: ["browser", "module", "main"],
    conditions: ["workerd", "worker", "browser"],
    logLevel: "silent",
  });
  const code = result.outputFiles[0]!.contents;
  return { minifiedBytes: code.byteLength, gzipBytes: gzipSync(code, { level: 9 }).byteLength };
}

// ---------------------------------------------------------------- 3b. the browsing trace

/** One side of the browsing trace's replay. */
interface TraceSide {
  roundTripsPerRequest: number;
  p50Ms: number;
  p95Ms: number;
  /** How many requests sent 0, 1, 2, … round trips. */
  requestsByRoundTrips: Record<string, number>;
}

interface BrowsingTrace {
  trace: string;
  requests: number;
  writes: number;
  views: number;
  browsers: number;
  spanMinutes: number;
  maxAge: number;
  clock: string;
  /** The most a request started after its time in the trace (the clock never goes back). */
  clockLagMs: number;
  /** Both sides answered every request with the same body (the counter each browser sees). */
  sameAnswers: boolean;
  /**
   * The fewest round trips per request of any scheme that goes to the database for every write
   * and at least once per maxAge of a browser's reads: the trace's own floor for the goal.
   */
  floorRoundTripsPerRequest: number;
  withoutSnapshot: TraceSide;
  withSnapshot: TraceSide;
  goal: number;
  met: boolean;
}

/**
 * Round trips the trace needs at the least with a bound of `maxAge` seconds: one per write, and
 * one per read more than `maxAge` after the browser's last visit to the database.
 */
function traceFloor(trace: Trace, maxAge: number): number {
  const last = new Map<number, number>();
  let trips = 0;
  for (const [atMs, browser, write] of trace.requests) {
    const seen = last.get(browser);
    if (write || seen === undefined || atMs - seen > maxAge * 1000) {
      trips++;
      last.set(browser, atMs);
    }
  }
  return trips;
}

/** The nearest-rank percentile. */
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(p * s.length) - 1)]!;
}

/**
 * Replays bench/trace.json against pgsession without (`plain`) and with (`snapshot`) the
 * snapshot, one request at a time: each request of the trace goes to both, in alternating order,
 * each side with its own cookie jar per browser, on the virtual clock (see bench/_trace.ts).
 * Round trips are counted at the /sql endpoint around each request.
 */
async function replayTrace(plain: string, snapshot: string, count: () => Promise<number>): Promise<BrowsingTrace> {
  const sides = [plain, snapshot].map((base) => ({
    base,
    jars: Array.from({ length: TRACE.browsers }, () => new Jar()),
    ms: [] as number[],
    trips: [] as number[],
    bodies: [] as string[],
  }));
  const clock = new VirtualClock();
  clock.install();
  try {
    for (const [i, [atMs, browser, write]] of TRACE.requests.entries()) {
      for (const side of i % 2 ? [...sides].reverse() : sides) {
        clock.set(atMs);
        const jar = side.jars[browser]!;
        const cookie = jar.header();
        const before = await count();
        const t = performance.now();
        const res = await fetch(side.base + (write ? "/modify" : "/read"), { headers: cookie ? { cookie } : {} });
        const body = await res.text();
        side.ms.push(performance.now() - t);
        side.trips.push((await count()) - before);
        if (res.status !== 200) throw new Error(`browsing trace, request ${i}: HTTP ${res.status}`);
        jar.take(res);
        side.bodies.push(body);
      }
    }
  } finally {
    clock.uninstall();
  }
  const summary = ({ ms, trips }: (typeof sides)[number]): TraceSide => ({
    roundTripsPerRequest: round(trips.reduce((a, b) => a + b, 0) / trips.length, 3),
    p50Ms: round(percentile(ms, 0.5), 1),
    p95Ms: round(percentile(ms, 0.95), 1),
    requestsByRoundTrips: trips.reduce<Record<string, number>>((acc, n) => ((acc[n] = (acc[n] ?? 0) + 1), acc), {}),
  });
  const [without, withSnapshot] = sides.map(summary) as [TraceSide, TraceSide];
  return {
    trace: "bench/trace.json",
    requests: TRACE.requests.length,
    writes: TRACE.requests.filter((r) => r[2]).length,
    views: TRACE.views,
    browsers: TRACE.browsers,
    spanMinutes: round(TRACE.requests[TRACE.requests.length - 1]![0] / 60_000, 1),
    maxAge: SNAPSHOT_MAX_AGE,
    clock: "virtual: Date.now() set to each request's time in the trace, real speed within a request",
    clockLagMs: round(clock.lagMs, 1),
    sameAnswers: sides[0]!.bodies.every((b, i) => b === sides[1]!.bodies[i]),
    floorRoundTripsPerRequest: round(traceFloor(TRACE, SNAPSHOT_MAX_AGE) / TRACE.requests.length, 3),
    withoutSnapshot: without,
    withSnapshot,
    goal: TRACE_GOAL,
    met: withSnapshot.roundTripsPerRequest <= TRACE_GOAL,
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const loadAtStart = round(os.loadavg()[0]!, 2);
  const postgres = (await admin.query("SHOW server_version")).rows[0].server_version as string;
  await admin.query(`CREATE SCHEMA ${SCHEMA}`);
  cleanups.push(() => admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`));
  await admin.query(schemaSql(TABLE));
  // connect-pg-simple's table.sql, in a schema of its own (its table is called "session" too).
  await admin.query(`CREATE SCHEMA ${SCHEMA}_x`);
  cleanups.push(() => admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA}_x CASCADE`));
  await admin.query(
    `CREATE TABLE ${SCHEMA}_x.session (sid varchar NOT NULL COLLATE "default" PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)`,
  );
  await admin.query(`CREATE INDEX ON ${SCHEMA}_x.session (expire)`);

  const support = await startSupportServer();
  cleanups.push(() => support.close());
  configureNeon(support.port);

  // ---- 4, 5: CPU only, before anything else loads the machine
  log("codec: cbor-x vs JSON");
  const codec = codecBench();
  log("bundle sizes");
  const withPgsession = await bundleSize("./bundle/worker.ts");
  const neonOnly = await bundleSize("./bundle/neon_only.ts");
  const noSnapshot = await bundleSize("./bundle/worker.ts", [withoutSnapshotModule]);
  const bundle = {
    worker: withPgsession,
    neonOnly,
    pgsessionOwn: {
      minifiedBytes: withPgsession.minifiedBytes - neonOnly.minifiedBytes,
      gzipBytes: withPgsession.gzipBytes - neonOnly.gzipBytes,
    },
    workerWithoutSnapshotModule: noSnapshot,
    snapshotModule: {
      minifiedBytes: withPgsession.minifiedBytes - noSnapshot.minifiedBytes,
      gzipBytes: withPgsession.gzipBytes - noSnapshot.gzipBytes,
    },
  };

  // ---- 1: statements per request, counted at the database client
  log("statements per request");
  const pgCounted = countingPool(pool());
  const pgStore = new PostgresStore({ client: pgCounted.pool, table: TABLE });
  const pgsession = handlerClient(pgsessionHandler(pgStore), () => Promise.resolve(pgCounted.count()));
  const exCounted = countingPool(pool());
  const expressBase = await listen(expressApp(exCounted.pool, `${SCHEMA}_x`) as unknown as http.RequestListener);
  const express = fetchClient(expressBase, () => Promise.resolve(exCounted.count()));
  const statements: Record<string, { pgsession: number; express: number }> = {};
  for (const s of SCENARIOS) {
    statements[s.key] = {
      pgsession: await measureStatements(pgsession, s),
      express: await measureStatements(express, s),
    };
  }

  // ---- 2: throughput and latency under load
  log(`seeding ${SESSIONS} sessions per system`);
  const seedCookies = async (client: Client): Promise<string[]> => {
    const cookies: string[] = [];
    await Promise.all(Array.from({ length: POOL_SIZE }, async () => {
      while (cookies.length < SESSIONS) cookies.push((await cookieFor(client, "valid"))!);
    }));
    return cookies.slice(0, SESSIONS);
  };
  const pgCookies = await seedCookies(pgsession);
  const exCookies = await seedCookies(express);
  // Cache-miss reads: sessions no server process has seen, one slice per run (warm-up + rounds),
  // minted as a browser's first visit would leave them: a row like the seeded ones, a signed
  // cookie for its token. In a table of their own (with a copy of the seeded sessions, which the
  // miss process modifies), so the other systems' tables keep their 1000 rows: the miss read is
  // a large site, the rest are as before.
  await admin.query(`CREATE SCHEMA ${MISS_SCHEMA}`);
  cleanups.push(() => admin.query(`DROP SCHEMA IF EXISTS ${MISS_SCHEMA} CASCADE`));
  await admin.query(schemaSql(`${MISS_SCHEMA}.session`));
  await admin.query(`INSERT INTO ${MISS_SCHEMA}.session SELECT * FROM ${TABLE}`);
  const missPerRun = (seconds: number): number => Math.ceil(MISS_RATE * seconds);
  const missSlices = [missPerRun(WARMUP), ...Array.from({ length: ROUNDS }, () => missPerRun(SECONDS))];
  log(`minting ${missSlices.reduce((a, b) => a + b, 0) + 1} unseen sessions for the cache-miss read`);
  const minted = await mintSessions(
    `${MISS_SCHEMA}.session`,
    pgCookies[0]!,
    missSlices.reduce((a, b) => a + b, 0) + 1,
  );
  const probe = minted.pop()!;
  const probeBody =
    await (await pgsessionHandler(new PostgresStore({ client: pool(), table: `${MISS_SCHEMA}.session` }))(
      new Request("http://127.0.0.1/read", { headers: { cookie: probe } }),
    )).text();
  if (probeBody !== "1") throw new Error(`a minted session reads ${probeBody}, not the seeded counter 1`);
  let offset = 0;
  const missCookies = missSlices.map((n) => minted.slice(offset, offset += n));
  await admin.query(`CREATE TABLE ${SCHEMA}.limit_session AS SELECT * FROM ${TABLE}`);
  await admin.query(`ALTER TABLE ${SCHEMA}.limit_session ADD PRIMARY KEY (session_key)`);
  const limitCookies = (await admin.query(`SELECT session_key FROM ${SCHEMA}.limit_session LIMIT $1`, [SESSIONS])).rows
    .map((r: { session_key: string }) => `sid=${r.session_key}`);
  for (const t of [TABLE, `${SCHEMA}.limit_session`, `${SCHEMA}_x.session`, `${MISS_SCHEMA}.session`]) {
    await admin.query(`VACUUM ANALYZE ${t}`);
  }

  type SystemKey =
    | "limitHonoPrepared"
    | "limitHono"
    | "limitNodePrepared"
    | "limitNode"
    | "pgsessionPg"
    | "pgsessionPgCopy"
    | "pgsessionPgMiss"
    | "pgsessionHttp"
    | "express"
    | "pgsessionPgPrepared"
    | "pgsessionPgUnsigned"
    | "pgsessionPgBaseline"
    | "pgsessionHttpBaseline";
  type ModeKey = "readOnly" | "modify";
  const cpuProf = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const systems: {
    key: SystemKey;
    label: string;
    argv: string[];
    env?: Record<string, string>;
    flags?: string[];
    /** The cookies of a run: round 0 is the warm-up. */
    cookies: string[] | ((round: number, mode: ModeKey) => string[]);
    /** The schema of its table, when not the shared one. */
    schema?: string;
  }[] = [
    // The limits: named prepared statements (planned once per connection) and plain text.
    {
      key: "limitHonoPrepared",
      label: "limit, prepared, @hono/node-server",
      argv: ["limit-hono"],
      env: { BENCH_PREPARE: "1" },
      cookies: limitCookies,
    },
    { key: "limitHono", label: "limit, unprepared, @hono/node-server", argv: ["limit-hono"], cookies: limitCookies },
    {
      key: "limitNodePrepared",
      label: "limit, prepared, bare node:http",
      argv: ["limit-node"],
      env: { BENCH_PREPARE: "1" },
      cookies: limitCookies,
    },
    // pgsession with no option beyond the table and the secret: what most users run.
    {
      key: "pgsessionPg",
      label: "pgsession, pg.Pool, @hono/node-server",
      argv: ["pgsession-pg"],
      flags: cpuProf,
      cookies: pgCookies,
    },
    // A/A: the same build in a second process on the same cookies: its ratio to pgsessionPg is 1
    // but for the noise of this run.
    {
      key: "pgsessionPgCopy",
      label: "pgsession, pg.Pool, a second copy (A/A)",
      argv: ["pgsession-pg"],
      cookies: pgCookies,
    },
    // A third copy whose reads are all sessions it has not seen (modify: pgsessionPg's cookies).
    // A process of its own with the same schedule as the other two: sharing pgsessionPg's would
    // give that one a history the A/A copy lacks, and a process's history moved it by 2× in trials.
    {
      key: "pgsessionPgMiss",
      label: "pgsession, pg.Pool, a third copy: reads only sessions it has not seen (cache miss), modifies as above",
      argv: ["pgsession-pg"],
      cookies: (round, mode) => mode === "readOnly" ? missCookies[round]! : pgCookies,
      schema: MISS_SCHEMA,
    },
    {
      key: "pgsessionHttp",
      label: "pgsession, Neon HTTP (local /sql), @hono/node-server",
      argv: ["pgsession-http"],
      cookies: pgCookies,
    },
    { key: "express", label: "express-session + connect-pg-simple, express", argv: ["express"], cookies: exCookies },
  ];
  if (args.variants) {
    systems.push(
      { key: "limitNode", label: "limit, unprepared, bare node:http", argv: ["limit-node"], cookies: limitCookies },
      {
        key: "pgsessionPgPrepared",
        label: "pgsession, pg.Pool, `prepare: true`",
        argv: ["pgsession-pg"],
        env: { BENCH_PREPARE: "1" },
        cookies: pgCookies,
      },
      // Unsigned cookies: the same tokens without their signature.
      {
        key: "pgsessionPgUnsigned",
        label: "pgsession, pg.Pool, no secrets",
        argv: ["pgsession-pg"],
        env: { BENCH_NO_SECRETS: "1" },
        cookies: pgCookies.map((c) => c.replace(/\.[^.]*$/, "")),
      },
    );
  }
  if (args.baseline) {
    // Another build of pgsession on the same table and cookies (same schema and token format).
    const env = { BENCH_PGSESSION: args.baseline };
    systems.push(
      {
        key: "pgsessionPgBaseline",
        label: `pgsession from ${args.baseline}, pg.Pool`,
        argv: ["pgsession-pg"],
        env,
        cookies: pgCookies,
      },
      {
        key: "pgsessionHttpBaseline",
        label: `pgsession from ${args.baseline}, Neon HTTP`,
        argv: ["pgsession-http"],
        env,
        cookies: pgCookies,
      },
    );
  }
  log(`starting ${systems.length} servers and the load generator`);
  const started = await Promise.all(
    systems.map((s) =>
      startChild(here("./_server.ts"), s.argv, {
        BENCH_SCHEMA: s.schema ?? (s.key === "express" ? `${SCHEMA}_x` : SCHEMA),
        SUPPORT_PORT: String(support.port),
        BENCH_APP: appName(s.key),
        ...s.env,
      }, s.flags)
    ),
  );
  const childOf = (s: (typeof systems)[number]): Child => started[systems.indexOf(s)]!;
  const cookiesOf = (s: (typeof systems)[number], round: number, mode: ModeKey): string[] =>
    typeof s.cookies === "function" ? s.cookies(round, mode) : s.cookies;
  const load = startLoad();
  // Whose CPU a run reads: the server, its PostgreSQL backends (by application_name), the whole
  // cluster, the load generator, and for Neon HTTP the local /sql endpoint's process.
  const postmaster = parentOf((await admin.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number);
  const endpointPid = findChild(process.pid, "support/server.ts");
  const backendsOf = async (s: (typeof systems)[number]): Promise<number[]> =>
    (await admin.query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [
      appName(s.key),
    ])).rows.map((r: { pid: number }) => r.pid);
  const readCpu = async (s: (typeof systems)[number]) => {
    const server = childOf(s).proc.pid!;
    return {
      server: processCpu(server),
      serverMainThread: mainThreadCpu(server),
      backends: cpuByPid(await backendsOf(s)),
      cluster: postmaster === null ? null : clusterCpu(postmaster),
      load: processCpu(load.pid),
      endpoint: endpointPid === null ? null : processCpu(endpointPid),
    };
  };
  const modes = [{ key: "readOnly", path: "/read" }, { key: "modify", path: "/modify" }] as const;
  const runs: { round: number; mode: string; system: SystemKey; result: LoadResult; cpu: CpuPerRequest | null }[] = [];
  const runOnce = async (s: (typeof systems)[number], mode: ModeKey, path: string, round: number, seconds: number) => {
    const cookies = cookiesOf(s, round, mode);
    const before = await readCpu(s);
    const result = await load.run({
      url: `http://127.0.0.1:${childOf(s).port}${path}`,
      cookies,
      connections: CONNECTIONS,
      seconds,
    });
    const after = await readCpu(s);
    if (cookies !== pgCookies && s.key === "pgsessionPgMiss" && result.requests > cookies.length) {
      log(`!! ${s.key}: ${result.requests} requests for ${cookies.length} unseen sessions: raise --miss-rate`);
    }
    const per = (a: number | null, b: number | null): number | null =>
      a === null || b === null || result.requests === 0 ? null : round1((b - a) / result.requests);
    const cpu: CpuPerRequest = {
      server: per(before.server, after.server),
      serverMainThread: per(before.serverMainThread, after.serverMainThread),
      postgres: round1(cpuBetween(before.backends, after.backends) / Math.max(1, result.requests)),
      postgresCluster: per(before.cluster, after.cluster),
      load: per(before.load, after.load),
      ...(s.argv[0] === "pgsession-http" ? { endpoint: per(before.endpoint, after.endpoint) } : {}),
    };
    return { result, cpu: cpu.server === null ? null : cpu };
  };
  try {
    log(`warm-up: ${WARMUP} s per system and mode`);
    for (const mode of modes) {
      for (const s of systems) await runOnce(s, mode.key, mode.path, 0, WARMUP);
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of modes) {
        // Rotate the order every round so drift does not always hit the same system, and reverse
        // it every other round so no system always runs right after the same one (the A/A pair
        // would otherwise always run back to back in the same order).
        const rotated = systems.map((_, i) => (i + r) % systems.length);
        const order = r % 2 ? rotated.reverse() : rotated;
        for (const i of order) {
          const s = systems[i]!;
          const { result, cpu } = await runOnce(s, mode.key, mode.path, r + 1, SECONDS);
          log(
            `round ${
              r + 1
            }/${ROUNDS} ${mode.key} ${s.key}: ${result.rps} req/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms${
              cpu ? `, CPU/req: server ${cpu.server} µs, postgres ${cpu.postgres} µs` : ""
            }${result.errors + result.non2xx ? `, ${result.errors} errors, ${result.non2xx} non-2xx` : ""}`,
          );
          runs.push({ round: r + 1, mode: mode.key, system: s.key, result, cpu });
        }
      }
    }
  } finally {
    await load.close();
    await Promise.all(started.map((c) => c.close()));
  }
  const throughput: Record<
    string,
    Record<string, { rps: number; p50Ms: number; p99Ms: number; errors: number; non2xx: number; rpsPerRound: number[] }>
  > = {};
  const cpuPerRequest: Record<string, Record<string, CpuPerRequest & { perRound: (CpuPerRequest | null)[] }>> = {};
  for (const mode of modes) {
    throughput[mode.key] = {};
    cpuPerRequest[mode.key] = {};
    for (const s of systems) {
      const mine = runs.filter((x) => x.mode === mode.key && x.system === s.key);
      if (mine.length === 0) continue;
      const results = mine.map((x) => x.result);
      throughput[mode.key]![s.key] = {
        rps: Math.round(mean(results.map((x) => x.rps))),
        p50Ms: round(mean(results.map((x) => x.p50Ms)), 1),
        p99Ms: round(mean(results.map((x) => x.p99Ms)), 1),
        errors: results.reduce((a, x) => a + x.errors, 0),
        non2xx: results.reduce((a, x) => a + x.non2xx, 0),
        rpsPerRound: results.map((x) => x.rps),
      };
      const cpus = mine.map((x) => x.cpu);
      const med = (k: keyof CpuPerRequest): number | null => {
        const xs = cpus.map((c) => c?.[k]).filter((v): v is number => typeof v === "number");
        return xs.length ? round1(median(xs)) : null;
      };
      cpuPerRequest[mode.key]![s.key] = {
        server: med("server"),
        serverMainThread: med("serverMainThread"),
        postgres: med("postgres"),
        postgresCluster: med("postgresCluster"),
        load: med("load"),
        ...(s.argv[0] === "pgsession-http" ? { endpoint: med("endpoint") } : {}),
        perRound: cpus,
      };
    }
  }
  const has = (s: SystemKey): boolean => systems.some((x) => x.key === s);
  // Each round's ratio of a to b; the median of these is the ratio reported. A round runs every
  // system within seconds, so load that comes and goes on a shared machine moves both sides.
  const perRoundRatios: Record<string, Record<string, number[]>> = {};
  const ratiosFor = (mode: string): Record<string, number> => {
    const perRound = (s: SystemKey): number[] => throughput[mode]![s]!.rpsPerRound;
    const rounds: Record<string, number[]> = (perRoundRatios[mode] = {});
    const ratio = (name: string, a: SystemKey, b: SystemKey): [string, number][] => {
      if (!throughput[mode]![a] || !throughput[mode]![b]) return [];
      rounds[name] = perRound(a).map((x, i) => round(x / perRound(b)[i]!, 3));
      return [[name, round(median(rounds[name]!), 2)]];
    };
    return Object.fromEntries([
      // A/A: the noise floor of this run's ratios.
      ...ratio("pgsessionPgOverCopy", "pgsessionPg", "pgsessionPgCopy"),
      // Same adapter, same pool, same table size: only the session library differs.
      ...ratio("pgsessionPgOverPreparedLimit", "pgsessionPg", "limitHonoPrepared"),
      ...ratio("pgsessionPgOverUnpreparedLimit", "pgsessionPg", "limitHono"),
      ...ratio("pgsessionPgOverNodeLimit", "pgsessionPg", "limitNodePrepared"),
      ...ratio("pgsessionPgOverExpress", "pgsessionPg", "express"),
      ...ratio("pgsessionHttpOverExpress", "pgsessionHttp", "express"),
      ...ratio("pgsessionHttpOverPreparedLimit", "pgsessionHttp", "limitHonoPrepared"),
      // What the adapter costs by itself, and what preparing saves the limit.
      ...ratio("honoLimitOverNodeLimit", "limitHonoPrepared", "limitNodePrepared"),
      ...ratio("preparedLimitOverUnpreparedLimit", "limitHonoPrepared", "limitHono"),
      // Its modify runs are a third copy's, on its bigger table: not a cache-miss figure.
      ...(mode === "readOnly" ? ratio("pgsessionPgMissOverHit", "pgsessionPgMiss", "pgsessionPg") : []),
      ...(has("pgsessionPgPrepared")
        ? ratio("pgsessionPgPreparedOverPreparedLimit", "pgsessionPgPrepared", "limitHonoPrepared")
        : []),
      ...(has("pgsessionPgBaseline")
        ? [
          ...ratio("pgsessionPgOverBaseline", "pgsessionPg", "pgsessionPgBaseline"),
          ...ratio("pgsessionHttpOverBaseline", "pgsessionHttp", "pgsessionHttpBaseline"),
        ]
        : []),
    ]);
  };
  const ratios = { readOnly: ratiosFor("readOnly"), modify: ratiosFor("modify") };
  // The A/A row's spread: how far from 1 a ratio of two identical systems strayed in this run.
  const noise = Object.fromEntries(modes.map(({ key }) => {
    const aa = perRoundRatios[key]!.pgsessionPgOverCopy!;
    return [key, {
      aaMedian: ratios[key].pgsessionPgOverCopy!,
      aaPerRound: aa,
      aaMaxDeviation: round(Math.max(...aa.map((x) => Math.abs(x - 1))), 3),
    }];
  }));
  // CPU of a cache-miss read over a cache-hit read, same round, two processes with the same
  // schedule (like the A/A pair): the median of the rounds' ratios, for the server and for
  // server + PostgreSQL backends.
  const cpuRounds = (a: SystemKey, b: SystemKey, pick: (c: CpuPerRequest) => number | null): number[] => {
    const top = cpuPerRequest.readOnly![a]!.perRound;
    const bottom = cpuPerRequest.readOnly![b]!.perRound;
    return top.flatMap((m, i) => {
      const x = m && pick(m);
      const y = bottom[i] && pick(bottom[i]!);
      return x && y ? [round(x / y, 3)] : [];
    });
  };
  const server = (c: CpuPerRequest): number | null => c.server;
  const serverAndPostgres = (c: CpuPerRequest): number | null =>
    c.server === null ? null : c.server + (c.postgres ?? 0);
  const med = (xs: number[]): number | null => xs.length ? round(median(xs), 2) : null;
  const aaCpu = cpuRounds("pgsessionPg", "pgsessionPgCopy", server);
  const cacheMiss = {
    serverCpuOverHit: med(cpuRounds("pgsessionPgMiss", "pgsessionPg", server)),
    serverCpuOverHitPerRound: cpuRounds("pgsessionPgMiss", "pgsessionPg", server),
    serverAndPostgresCpuOverHit: med(cpuRounds("pgsessionPgMiss", "pgsessionPg", serverAndPostgres)),
    // The same ratio between the A/A pair: how far two identical processes' CPU per read differ.
    aaServerCpu: med(aaCpu),
    aaServerCpuMaxDeviation: aaCpu.length ? round(Math.max(...aaCpu.map((x) => Math.abs(x - 1))), 3) : null,
    sessionsPerRun: missSlices.slice(1),
  };

  // ---- 3: latency per scenario with a delay per database round trip
  log(`edge latency: ${DELAY_MS} ms per round trip, ${SAMPLES} samples per scenario`);
  const edgeClients: [string, Client][] = [];
  const serveEdge = async (handler: FetchHandler): Promise<string> => {
    // In this process the global Request and Response stay Node's own: the clients use them.
    const server = await new Promise<http.Server>((resolve) => {
      const s = serve(
        { fetch: handler, port: 0, hostname: "127.0.0.1", overrideGlobalObjects: false },
        () => resolve(s as http.Server),
      );
    });
    cleanups.push(() => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const httpRequests = async (): Promise<number> => (await support.stats()).http.requests;
  const edgeStore = (): PostgresStore =>
    new PostgresStore({ connectionString: DATABASE_URL, fetchEndpoint: `${support.url}/sql`, table: TABLE });
  const edgeBase = await serveEdge(pgsessionHandler(edgeStore()));
  edgeClients.push(["pgsession", fetchClient(edgeBase, httpRequests)]);
  // The same with the snapshot on (issue 18): default options plus `snapshot: { maxAge }`.
  const snapshotBase = await serveEdge(
    pgsessionHandler(edgeStore(), true, withSession, { maxAge: SNAPSHOT_MAX_AGE }),
  );
  const snapshotClient = fetchClient(snapshotBase, httpRequests);
  if (args.baseline) {
    const lib: typeof import("../mod.ts") = await import(pathToFileURL(path.resolve(args.baseline, "mod.ts")).href);
    const store = new lib.PostgresStore(
      { connectionString: DATABASE_URL, fetchEndpoint: `${support.url}/sql`, table: TABLE } as ConstructorParameters<
        typeof lib.PostgresStore
      >[0],
    );
    edgeClients.push([
      "baseline",
      fetchClient(await serveEdge(pgsessionHandler(store, true, lib.withSession)), httpRequests),
    ]);
  }
  const proxy = await startDelayProxy({
    host: new URL(DATABASE_URL).hostname || "127.0.0.1",
    port: Number(new URL(DATABASE_URL).port || 5432),
  });
  cleanups.push(() => proxy.close());
  const proxied = new URL(DATABASE_URL);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(proxy.port);
  const edgeExCounted = countingPool(pool(proxied.href));
  edgeClients.push([
    "express",
    fetchClient(
      await listen(expressApp(edgeExCounted.pool, `${SCHEMA}_x`) as unknown as http.RequestListener),
      () => Promise.resolve(edgeExCounted.count()),
    ),
  ]);
  await setDelays(support, proxy, DELAY_MS);
  // Open the pools' connections before timing anything.
  for (const c of [...edgeClients.map(([, c]) => c), snapshotClient]) {
    await Promise.all(Array.from({ length: 4 }, () => c.request("/read", undefined)));
  }
  const edge: Record<string, Record<string, number> | BrowsingTrace> = {};
  // Read-only and modify with the snapshot, sampled beside the same requests without it: the
  // cookies (session and snapshot) of a session just created, so the snapshot is fresh.
  const snapshotSamples: Record<string, { ms: number[]; trips: number[] }> = {};
  const sampleSnapshot = async (s: Scenario): Promise<void> => {
    const setup = await snapshotClient.request("/modify");
    if (!setup.cookies?.includes(".s=")) throw new Error(`edge snapshot: no snapshot cookie from /modify`);
    const before = await snapshotClient.count();
    const t = performance.now();
    const { status } = await snapshotClient.request(s.path, setup.cookies);
    const ms = performance.now() - t;
    if (status !== 200) throw new Error(`edge snapshot ${s.path}: HTTP ${status}`);
    const sample = (snapshotSamples[s.key] ??= { ms: [], trips: [] });
    sample.ms.push(ms);
    sample.trips.push((await snapshotClient.count()) - before);
  };
  for (const s of SCENARIOS) {
    const samples: Record<string, number[]> = Object.fromEntries(edgeClients.map(([name]) => [name, []]));
    const trips: Record<string, number> = {};
    for (let i = 0; i < SAMPLES; i++) {
      for (const [name, client] of edgeClients) {
        const cookie = await cookieFor(client, s.cookie);
        const before = await client.count();
        const t = performance.now();
        const { status } = await client.request(s.path, cookie);
        samples[name]!.push(performance.now() - t);
        trips[name] = (await client.count()) - before;
        if (status !== 200) throw new Error(`edge ${name} ${s.path}: HTTP ${status}`);
      }
      if (s.key === "readOnly" || s.key === "modify") await sampleSnapshot(s);
    }
    edge[s.key] = Object.fromEntries(
      edgeClients.flatMap((
        [name],
      ) => [[`${name}P50Ms`, round(median(samples[name]!), 1)], [`${name}RoundTrips`, trips[name]!]]),
    );
  }
  for (const [key, { ms, trips }] of Object.entries(snapshotSamples)) {
    // The most any sample sent: a claim of 0 or 1 holds for every sample or is not made.
    edge[`${key}Snapshot`] = { pgsessionP50Ms: round(median(ms), 1), pgsessionRoundTrips: Math.max(...trips) };
  }
  log(`browsing trace: ${TRACE.requests.length} requests, without and with the snapshot (maxAge ${SNAPSHOT_MAX_AGE})`);
  edge.browsingTrace = await replayTrace(edgeBase, snapshotBase, httpRequests);
  await setDelays(support, proxy, 0);

  const results = {
    date: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? "unknown",
      memoryGb: round(os.totalmem() / 2 ** 30, 1),
      node: process.version,
      postgres,
      honoNodeServer: HONO_NODE_SERVER,
      loadAverage1m: { atStart: loadAtStart, atEnd: round(os.loadavg()[0]!, 2) },
    },
    setup: {
      poolSize: POOL_SIZE,
      loadConnections: CONNECTIONS,
      secondsPerRun: SECONDS,
      rounds: ROUNDS,
      warmupSeconds: WARMUP,
      sessionsPerSystem: SESSIONS,
      edgeDelayMs: DELAY_MS,
      edgeSamples: SAMPLES,
      baseline: args.baseline ?? null,
      express:
        "express-session (resave: false, saveUninitialized: false) + connect-pg-simple (pruneSessionInterval: false), express 5",
      pgsession:
        "withSession, signed cookies, PostgresStore with default options (no prepare: true), default touchAfter (3600 s): read-only requests do not write; served by @hono/node-server",
      limit:
        "pg.Pool, 1 primary-key SELECT (read) or SELECT + UPDATE (modify), the cookie holds the key; a fetch handler behind @hono/node-server, and a raw node:http handler",
      systems: Object.fromEntries(systems.map((s) => [s.key, s.label])),
      missRate: MISS_RATE,
    },
    statements,
    throughput,
    ratios,
    ratioRounds: perRoundRatios,
    noise,
    cpuPerRequest,
    cacheMiss,
    // For the issue's report; the README states figures only.
    targets: {
      readOnlyOverPreparedLimit: target(0.8, ratios.readOnly.pgsessionPgOverPreparedLimit!, noise.readOnly),
      readOnlyOverExpress: target(4, ratios.readOnly.pgsessionPgOverExpress!, noise.readOnly),
      modifyOverPreparedLimit: target(0.75, ratios.modify.pgsessionPgOverPreparedLimit!, noise.modify),
      modifyOverExpress: target(1.5, ratios.modify.pgsessionPgOverExpress!, noise.modify),
      readMissServerCpuOverHit: {
        target: 1.15,
        value: cacheMiss.serverCpuOverHit,
        met: cacheMiss.serverCpuOverHit !== null && cacheMiss.serverCpuOverHit <= 1.15,
        atMost: true,
        aaMaxDeviation: cacheMiss.aaServerCpuMaxDeviation,
      },
      browsingTraceRoundTripsPerRequest: {
        target: TRACE_GOAL,
        value: (edge.browsingTrace as BrowsingTrace).withSnapshot.roundTripsPerRequest,
        met: (edge.browsingTrace as BrowsingTrace).met,
        atMost: true,
      },
      ...(ratios.readOnly.pgsessionHttpOverBaseline === undefined ? {} : {
        httpReadOnlyOverBaseline: target(1.25, ratios.readOnly.pgsessionHttpOverBaseline, noise.readOnly),
        httpModifyOverBaseline: target(1.25, ratios.modify.pgsessionHttpOverBaseline!, noise.modify),
      }),
    },
    edge,
    codec,
    bundle,
    runs,
  };
  writeFileSync(here("./results.json"), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(here("./chart.svg"), chart(results));
  writeFileSync(here("./snapshot.svg"), snapshotChart(results));
  print(results);
}

/** A ratio against its minimum, with the A/A deviation of the same mode beside it. */
function target(
  min: number,
  value: number,
  noise: { aaMaxDeviation: number },
): { target: number; value: number; met: boolean; aaMaxDeviation: number } {
  return { target: min, value, met: value >= min, aaMaxDeviation: noise.aaMaxDeviation };
}

async function setDelays(support: SupportServer, proxy: { setDelay(ms: number): void }, ms: number): Promise<void> {
  await support.setDelay(ms);
  proxy.setDelay(ms);
}

const SHORT: Record<string, string> = {
  noCookie: "no cookie",
  cookieUnused: "cookie, unused",
  readOnly: "read-only",
  modify: "modify",
  newSession: "new session",
  regenerate: "regenerate",
  destroy: "destroy",
  forged: "forged cookie",
};

// deno-lint-ignore no-explicit-any
function chart(r: any): string {
  const pg = { label: "pgsession, pg.Pool", color: "#2563eb" };
  const pgHttp = { label: "pgsession, Neon HTTP", color: "#7dd3fc" };
  const ex = { label: "express-session + connect-pg-simple", color: "#f59e0b" };
  const limitHono = { label: "limit, prepared, same adapter", color: "#6b7280" };
  const limitHonoText = { label: "limit, unprepared, same adapter", color: "#d1d5db" };
  const limitNode = { label: "limit, prepared, bare node:http", color: "#111827" };
  const keys = SCENARIOS.map((s) => s.key);
  return drawChart(
    [
      {
        title: "Statements per request",
        unit: "at the database client (pgsession: any transport)",
        rows: keys.map((k) => SHORT[k]!),
        series: [pg, ex],
        values: keys.map((k) => [r.statements[k].pgsession, r.statements[k].express]),
      },
      {
        title: "Throughput, Node, pool of 10",
        unit: `requests per second, ${r.setup.loadConnections} connections (higher is better)`,
        rows: ["read-only", "modify"],
        series: [limitNode, limitHono, limitHonoText, pg, pgHttp, ex],
        values: ["readOnly", "modify"].map((m) =>
          ["limitNodePrepared", "limitHonoPrepared", "limitHono", "pgsessionPg", "pgsessionHttp", "express"].map((s) =>
            r.throughput[m][s].rps
          )
        ),
      },
      {
        title: `Latency, ${r.setup.edgeDelayMs} ms per database round trip`,
        unit: "p50 ms per request (lower is better)",
        rows: keys.map((k) => SHORT[k]!),
        series: [pgHttp, ex],
        values: keys.map((k) => [r.edge[k].pgsessionP50Ms, r.edge[k].expressP50Ms]),
      },
    ],
    `${r.machine.cpus} cores (shared), Node ${r.machine.node}, PostgreSQL ${
      r.machine.postgres.split(" ")[0]
    }; fetch handlers on @hono/node-server; ${r.date.slice(0, 10)}; npm run bench`,
  );
}

/** bench/snapshot.svg: round trips and latency without and with the snapshot (issue 18). */
// deno-lint-ignore no-explicit-any
function snapshotChart(r: any): string {
  const off = { label: "pgsession, Neon HTTP", color: "#7dd3fc" };
  const on = { label: `the same with snapshot: { maxAge: ${r.edge.browsingTrace.maxAge} }`, color: "#16a34a" };
  const t = r.edge.browsingTrace;
  return drawChart(
    [
      {
        title: "Database round trips per request",
        unit: "counted at the database endpoint (lower is better)",
        rows: ["read-only", "modify", "browsing trace"],
        series: [off, on],
        values: [
          [r.edge.readOnly.pgsessionRoundTrips, r.edge.readOnlySnapshot.pgsessionRoundTrips],
          [r.edge.modify.pgsessionRoundTrips, r.edge.modifySnapshot.pgsessionRoundTrips],
          [t.withoutSnapshot.roundTripsPerRequest, t.withSnapshot.roundTripsPerRequest],
        ],
      },
      {
        title: `Latency, ${r.setup.edgeDelayMs} ms per database round trip`,
        unit: "ms per request (lower is better)",
        rows: ["read-only, p50", "modify, p50", "trace, p50", "trace, p95"],
        series: [off, on],
        values: [
          [r.edge.readOnly.pgsessionP50Ms, r.edge.readOnlySnapshot.pgsessionP50Ms],
          [r.edge.modify.pgsessionP50Ms, r.edge.modifySnapshot.pgsessionP50Ms],
          [t.withoutSnapshot.p50Ms, t.withSnapshot.p50Ms],
          [t.withoutSnapshot.p95Ms, t.withSnapshot.p95Ms],
        ],
      },
    ],
    `Trace: ${t.requests} requests, ${t.views} page views, ${t.browsers} browsers, ${t.spanMinutes} min (bench/trace.json), virtual clock; ${
      r.date.slice(0, 10)
    }; npm run bench`,
  );
}

/** The snapshot rows and the browsing trace as markdown (empty for results from before them). */
// deno-lint-ignore no-explicit-any
function snapshotTables(r: any): string {
  const t = r.edge.browsingTrace;
  if (!t || !r.edge.readOnlySnapshot) return "";
  const trips = (side: { requestsByRoundTrips: Record<string, number> }): string =>
    Object.entries(side.requestsByRoundTrips).map(([n, c]) => `${c} × ${n}`).join(", ");
  const kb = (v: number): string => `${(v / 1024).toFixed(1)} KB`;
  const m = r.bundle.snapshotModule;
  return `
Snapshot (issue 18), Neon HTTP, ${r.setup.edgeDelayMs} ms per round trip, default options plus \`snapshot: { maxAge: ${t.maxAge} }\`:

| request | round trips, without | with snapshot | p50, without | with snapshot |
|---|---|---|---|---|
| read-only (snapshot fresh) | ${r.edge.readOnly.pgsessionRoundTrips} | ${r.edge.readOnlySnapshot.pgsessionRoundTrips} | ${r.edge.readOnly.pgsessionP50Ms} ms | ${r.edge.readOnlySnapshot.pgsessionP50Ms} ms |
| modify (snapshot fresh) | ${r.edge.modify.pgsessionRoundTrips} | ${r.edge.modifySnapshot.pgsessionRoundTrips} | ${r.edge.modify.pgsessionP50Ms} ms | ${r.edge.modifySnapshot.pgsessionP50Ms} ms |

Browsing trace (bench/trace.json: ${t.requests} requests, ${t.writes} of them writes, ${t.views} page views of ${t.browsers} browsers over ${t.spanMinutes} min, replayed on a virtual clock, at most ${t.clockLagMs} ms behind the trace${
    t.sameAnswers ? "; both sides gave every request the same answer" : "; !! the two sides answered differently"
  }):

| | round trips per request | p50 | p95 | requests × round trips |
|---|---|---|---|---|
| without snapshot | ${t.withoutSnapshot.roundTripsPerRequest} | ${t.withoutSnapshot.p50Ms} ms | ${t.withoutSnapshot.p95Ms} ms | ${
    trips(t.withoutSnapshot)
  } |
| with \`snapshot: { maxAge: ${t.maxAge} }\` | **${t.withSnapshot.roundTripsPerRequest}** (goal ≤ ${t.goal}) | ${t.withSnapshot.p50Ms} ms | ${t.withSnapshot.p95Ms} ms | ${
    trips(t.withSnapshot)
  } |
${
    t.floorRoundTripsPerRequest === undefined
      ? ""
      : `\nThe trace's floor with a ${t.maxAge}-s bound (one round trip per write and per read more than ${t.maxAge} s after the browser's last database visit): ${t.floorRoundTripsPerRequest} per request.\n`
  }${
    m
      ? `\nWhat the snapshot module (src/_snapshot.ts) adds to the Worker: ${kb(m.minifiedBytes)} minified, ${
        kb(m.gzipBytes)
      } gzip (${m.gzipBytes} bytes).\n`
      : ""
  }`;
}

// deno-lint-ignore no-explicit-any
function print(r: any): void {
  const n = (x: number): string => x.toLocaleString("en-US");
  const t = r.throughput;
  const cell = (m: string, s: string): string =>
    t[m][s] ? `${n(t[m][s].rps)} (${t[m][s].p50Ms} / ${t[m][s].p99Ms} ms)` : "–";
  const x = (v: number | undefined): string => v === undefined ? "–" : `${v.toFixed(2)}×`;
  // A ratio, the range of its rounds, and this run's A/A deviation beside it (older results: the ratio only).
  const rx = (mode: string, key: string): string => {
    const v = r.ratios[mode][key];
    const rounds: number[] | undefined = r.ratioRounds?.[mode]?.[key];
    if (v === undefined || !rounds) return x(v);
    const aa = r.noise?.[mode]?.aaMaxDeviation;
    return `${x(v)} (${Math.min(...rounds).toFixed(2)}–${Math.max(...rounds).toFixed(2)}${
      aa === undefined || key === "pgsessionPgOverCopy" ? "" : `; A/A ±${Math.round(aa * 100)}%`
    })`;
  };
  const goal = (read?: string, modify?: string): string =>
    read || modify ? ` ${read ?? "–"} / ${modify ?? "–"} |` : " |";
  const ratio = (key: string, read?: string, modify?: string): string =>
    `| ${rx("readOnly", key)} | ${rx("modify", key)} |${goal(read, modify)}`;
  const baseline = r.setup.baseline !== null;
  const rows = SCENARIOS.map((s) =>
    `| ${s.label} | ${r.statements[s.key].pgsession} | ${r.statements[s.key].express} | ${
      r.edge[s.key].pgsessionP50Ms
    } ms | ${r.edge[s.key].expressP50Ms} ms |${baseline ? ` ${r.edge[s.key].baselineP50Ms} ms |` : ""}`
  );
  const codec = r.codec.map((c: Record<string, number | string>) =>
    `| ${c.payload} | ${n(c.cborBytes as number)} B, ${c.cborMicros} µs | ${
      n(c.jsonBytes as number)
    } B, ${c.jsonMicros} µs |`
  );
  const b = r.bundle;
  const kb = (v: number): string => `${(v / 1024).toFixed(1)} KB`;
  const first = [
    "limitNodePrepared",
    "limitHonoPrepared",
    "limitHono",
    "pgsessionPg",
    "pgsessionPgCopy",
    "pgsessionPgMiss",
    "pgsessionHttp",
    "express",
  ];
  const order = first.filter((k) => k in r.setup.systems).concat(
    Object.keys(r.setup.systems).filter((k) => !first.includes(k)),
  );
  const micros = (v: number | null | undefined): string => v === null || v === undefined ? "–" : `${Math.round(v)}`;
  const cpuCell = (m: string, s: string): string => {
    const c = r.cpuPerRequest?.[m]?.[s];
    if (!c) return "– | – | – | –";
    const endpoint = c.endpoint === undefined ? "" : ` + ${micros(c.endpoint)} /sql`;
    return `${micros(c.server)} (${micros(c.serverMainThread)}) | ${micros(c.postgres)}${endpoint} | ${
      micros(c.postgresCluster)
    } | ${micros(c.load)}`;
  };
  const cpuTable = r.cpuPerRequest
    ? `
CPU per request, µs, median of the rounds (from /proc: utime + stime over the run ÷ requests). Server: its process, all threads (main thread alone in brackets). Backends: the PostgreSQL processes of that server's connections. Cluster: every PostgreSQL process, background work and other clients of the cluster included. Load: autocannon.

| system | mode | server (main thread) | PostgreSQL backends | PostgreSQL cluster | load generator |
|---|---|---|---|---|---|
${
      ["readOnly", "modify"].flatMap((m) =>
        order.filter((s) => r.cpuPerRequest[m]?.[s]).map((s) =>
          `| ${r.setup.systems[s]} | ${m === "readOnly" ? "read-only" : "modify"} | ${cpuCell(m, s)} |`
        )
      ).join("\n")
    }

Cache-miss read (every request a browser the server process has not seen) over a cache-hit read, two processes with the same schedule, same rounds: server CPU ${
      x(r.cacheMiss.serverCpuOverHit ?? undefined)
    } (target ≤ 1.15×), server + backends ${
      x(r.cacheMiss.serverAndPostgresCpuOverHit ?? undefined)
    }; the A/A pair's server CPU ratio ${x(r.cacheMiss.aaServerCpu ?? undefined)} (rounds up to ±${
      Math.round((r.cacheMiss.aaServerCpuMaxDeviation ?? NaN) * 100)
    }%) is this comparison's noise.
`
    : "";
  const aa = (m: string): string =>
    r.noise ? `±${Math.round(r.noise[m].aaMaxDeviation * 100)}%` : "not measured in this run";
  console.log(`
### Sessions: pgsession vs express-session + connect-pg-simple vs the bare query

${r.machine.cpus} cores (shared, load ${r.machine.loadAverage1m.atStart} → ${r.machine.loadAverage1m.atEnd}), Node ${r.machine.node}, PostgreSQL ${r.machine.postgres}, @hono/node-server ${r.machine.honoNodeServer}; ${r.date}.
pgsession with default options (no \`prepare: true\`), signed cookies; fetch handlers served by \`@hono/node-server\`, express-session by express.

| request | statements, pgsession | statements, express + cps | p50 with ${r.setup.edgeDelayMs} ms per round trip, pgsession (Neon HTTP) | same, express + cps (pg) |${
    baseline ? " same, baseline pgsession |" : ""
  }
|---|---|---|---|---|${baseline ? "---|" : ""}
${rows.join("\n")}

Throughput, req/s (p50 / p99 latency), ${r.setup.loadConnections} connections, pool of ${r.setup.poolSize}, mean of ${r.setup.rounds} interleaved ${r.setup.secondsPerRun}-s runs, every server and the load generator in its own process:

| | read-only | modify |
|---|---|---|
${order.map((s) => `| ${r.setup.systems[s]} | ${cell("readOnly", s)} | ${cell("modify", s)} |`).join("\n")}
${cpuTable}
Ratios: the median of the ${r.setup.rounds} rounds' ratios (in brackets the lowest and highest round, and this run's A/A deviation). The A/A row is pgsession over a second copy of itself: ideally 1.00×, its spread is the noise floor, read ${
    aa("readOnly")
  }, modify ${aa("modify")}; a ratio nearer its target than that is not told apart from it.

| ratio | read-only | modify | target, read / modify |
|---|---|---|---|
| **A/A: pgsession (pg) / a second copy of itself** ${ratio("pgsessionPgOverCopy", "1.00×", "1.00×")}
| pgsession (pg) / limit, prepared, same adapter ${ratio("pgsessionPgOverPreparedLimit", "≥ 0.8×", "≥ 0.75×")}
| pgsession (pg) / limit, unprepared, same adapter ${ratio("pgsessionPgOverUnpreparedLimit")}
| pgsession (pg) / express-session ${ratio("pgsessionPgOverExpress", "≥ 4×", "≥ 1.5×")}
| pgsession (Neon HTTP) / express-session ${ratio("pgsessionHttpOverExpress")}
| limit behind @hono/node-server / limit on bare node:http ${ratio("honoLimitOverNodeLimit")}
${
    r.ratios.readOnly.pgsessionPgMissOverHit === undefined
      ? ""
      : `| pgsession (pg), cache-miss read / cache-hit read, req/s ${ratio("pgsessionPgMissOverHit")}\n`
  }${
    r.ratios.readOnly.pgsessionPgPreparedOverPreparedLimit === undefined
      ? ""
      : `| pgsession (pg, \`prepare: true\`) / limit, prepared ${ratio("pgsessionPgPreparedOverPreparedLimit")}\n`
  }${
    baseline
      ? `| pgsession (pg) / baseline ${ratio("pgsessionPgOverBaseline")}\n| pgsession (Neon HTTP) / baseline ${
        ratio("pgsessionHttpOverBaseline")
      }\n`
      : ""
  }
| codec | cbor-x (bytes, encode + decode) | JSON |
|---|---|---|
${codec.join("\n")}

Bundle (esbuild, minified / gzip): Worker with pgsession ${kb(b.worker.minifiedBytes)} / ${
    kb(b.worker.gzipBytes)
  }; with only the Neon driver ${kb(b.neonOnly.minifiedBytes)} / ${kb(b.neonOnly.gzipBytes)}; pgsession's own cost ${
    kb(b.pgsessionOwn.minifiedBytes)
  } / ${kb(b.pgsessionOwn.gzipBytes)}.
${snapshotTables(r)}`);
  const targets = Object.entries(
    r.targets as Record<
      string,
      { target: number; value: number | null; met: boolean; atMost?: boolean; aaMaxDeviation?: number }
    >,
  ).map(([k, v]) => {
    const how = v.atMost ? "≤" : "≥";
    const miss = v.value === null
      ? "not measured"
      : v.met
      ? "met"
      : `missed by ${Math.abs(round((1 - v.value / v.target) * 100))}%`;
    const noise = v.aaMaxDeviation === undefined ? "" : `; A/A ±${Math.round(v.aaMaxDeviation * 100)}%`;
    return `${k}: ${v.value} (target ${how} ${v.target}) ${miss}${noise}`;
  });
  process.stderr.write(`\nTargets (issue 20), not for the README:\n  ${targets.join("\n  ")}\n`);
}

if (args.redraw) {
  const results = JSON.parse(readFileSync(here("./results.json"), "utf8"));
  writeFileSync(here("./chart.svg"), chart(results));
  if (results.edge.browsingTrace) writeFileSync(here("./snapshot.svg"), snapshotChart(results));
  print(results);
  await admin.end();
  process.exit(0);
}

try {
  await main();
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error) => log(`cleanup: ${error}`));
  await admin.end();
}
