// Where a request's CPU goes (issue 20): the main thread of a server of the session benchmark,
// profiled with `node --cpu-prof` under the benchmark's load, its samples grouped into buckets by
// the function that was running (self time), in µs per request. Only the samples taken while the
// measured load ran count (profile timestamps and process.hrtime share the monotonic clock), so
// startup and warm-up are left out.
//
//   npm run build && node --import tsx bench/profile.ts [--seconds 5] [--warmup 2] [--repeat 3]
//     [--systems pgsession-pg,limit-hono] [--modes readOnly,modify] [--out bench/out/profiles]
//
// Prints one markdown table per mode, the median of the repeats per bucket, and writes the
// .cpuprofile files (open them in Chrome DevTools) to --out/<system>-<mode>-<repeat>/. Same servers, pool, table size, 20
// connections and cookies as `npm run bench`; the limit is prepared, as its target's row.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { PostgresStore, schemaSql } from "../mod.ts";
import { pgsessionHandler, POOL_SIZE } from "./_apps.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    repeat: { type: "string", default: "3" },
    systems: { type: "string", default: "pgsession-pg,limit-hono" },
    modes: { type: "string", default: "readOnly,modify" },
    out: { type: "string", default: "bench/out/profiles" },
  },
});
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const OUT = path.resolve(ROOT, args.out);
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `bench_p_${Math.random().toString(36).slice(2, 8)}`;
const SESSIONS = 1000;
const CONNECTIONS = 20;
const PATHS: Record<string, string> = { readOnly: "/read", modify: "/modify" };

/** The bucket of a sample, from the function running when it was taken. */
function bucket(frame: { functionName: string; url: string }): string {
  const { functionName: fn, url } = frame;
  if (fn === "(idle)") return "idle";
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(program)") return "V8/native, unattributed";
  if (fn === "runMicrotasks" || url === "node:internal/process/task_queues") return "microtasks";
  if (url === "" && /^(writev|writeBuffer|write\w*String|writeGeneric)$/.test(fn)) return "socket writes (kernel)";
  if (url.includes("node_modules/pg") || url.includes("node_modules/postgres-")) return "pg driver";
  if (url.includes("node_modules/cbor-x")) return "cbor-x";
  if (url.includes("node_modules/@hono/node-server") || url.includes("undici")) {
    return "@hono/node-server, undici Request/Headers/Response";
  }
  if (url.includes("node_modules/hono/")) return "hono";
  if (url.startsWith(`file://${ROOT}`) && !url.includes("node_modules")) {
    return url.startsWith(`file://${ROOT}bench/`) ? "the bench app (handler, limit's queries)" : "pgsession's own code";
  }
  if (url.includes("event_target") || url.includes("abort_controller")) return "AbortController / EventTarget";
  if (url.includes("internal/crypto") || url === "node:crypto") return "node:crypto";
  if (/node:(_http|http|net|internal\/(http|net|stream|streams|js_stream|stream_base))/.test(url)) {
    return "node http, net, streams";
  }
  if (url.startsWith("node:")) return "other node internals";
  return url === "" ? `native: ${fn || "(anonymous)"}` : "other";
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string } }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** µs per bucket over the samples taken in [from, to] (µs, monotonic clock). */
function attribute(profile: CpuProfile, from: number, to: number): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, bucket(n.callFrame)]));
  const out = new Map<string, number>();
  let t = profile.startTime;
  const times = profile.timeDeltas.map((d) => (t += d));
  for (let i = 0; i < profile.samples.length - 1; i++) {
    if (times[i]! < from || times[i]! >= to) continue;
    const b = byId.get(profile.samples[i]!)!;
    out.set(b, (out.get(b) ?? 0) + (times[i + 1]! - times[i]!));
  }
  return out;
}

function startServer(system: string, name: string): Promise<{ port: number; proc: ChildProcess }> {
  const proc = spawn(
    process.execPath,
    ["--cpu-prof", `--cpu-prof-dir=${path.join(OUT, name)}`, "--import", "tsx", "bench/_server.ts", system],
    {
      cwd: ROOT,
      env: { ...process.env, BENCH_SCHEMA: SCHEMA, BENCH_PREPARE: system.startsWith("limit") ? "1" : "0" },
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (chunk: Buffer) => {
      out += chunk;
      const m = /^READY (\d+)\n/.exec(out);
      if (m) resolve({ port: Number(m[1]), proc });
    });
    proc.once("exit", (code) => reject(new Error(`${system} exited with ${code}: ${out}`)));
  });
}

const load = spawn(process.execPath, ["--import", "tsx", "bench/_load.ts"], {
  cwd: ROOT,
  stdio: ["pipe", "pipe", "inherit"],
});
const answers = readline.createInterface({ input: load.stdout! })[Symbol.asyncIterator]();
async function runLoad(url: string, cookies: string[], seconds: number): Promise<{ requests: number; rps: number }> {
  load.stdin!.write(JSON.stringify({ url, cookies, connections: CONNECTIONS, seconds }) + "\n");
  return JSON.parse((await answers.next()).value as string);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const admin = new pg.Pool({ connectionString: DATABASE_URL, max: POOL_SIZE });
mkdirSync(OUT, { recursive: true });
try {
  await admin.query(`CREATE SCHEMA ${SCHEMA}`);
  await admin.query(schemaSql(`${SCHEMA}.session`));
  // Seeded as the benchmark seeds them: a first visit that sets the counter.
  const seed = pgsessionHandler(new PostgresStore({ client: admin, table: `${SCHEMA}.session` }));
  const pgCookies: string[] = [];
  await Promise.all(Array.from({ length: POOL_SIZE }, async () => {
    while (pgCookies.length < SESSIONS) {
      const res = await seed(new Request("http://127.0.0.1/modify"));
      pgCookies.push(res.headers.getSetCookie()[0]!.split(";")[0]!);
    }
  }));
  await admin.query(`CREATE TABLE ${SCHEMA}.limit_session AS SELECT * FROM ${SCHEMA}.session`);
  await admin.query(`ALTER TABLE ${SCHEMA}.limit_session ADD PRIMARY KEY (session_key)`);
  const limitCookies = (await admin.query(`SELECT session_key FROM ${SCHEMA}.limit_session`)).rows
    .map((r: { session_key: string }) => `sid=${r.session_key}`);
  await admin.query(`VACUUM ANALYZE ${SCHEMA}.session`);
  await admin.query(`VACUUM ANALYZE ${SCHEMA}.limit_session`);

  const systems = args.systems.split(",");
  const modes = args.modes.split(",");
  // results[mode][system] = one Map per repeat, µs per request
  const results: Record<string, Record<string, Map<string, number>[]>> = {};
  for (let r = 1; r <= Number(args.repeat); r++) {
    for (const mode of modes) {
      for (const system of systems) {
        const name = `${system}-${mode}-${r}`;
        const { port, proc } = await startServer(system, name);
        const url = `http://127.0.0.1:${port}${PATHS[mode]}`;
        const cookies = system.startsWith("limit") ? limitCookies : pgCookies;
        await runLoad(url, cookies, Number(args.warmup));
        const from = Number(process.hrtime.bigint() / 1000n);
        const { requests, rps } = await runLoad(url, cookies, Number(args.seconds));
        const to = Number(process.hrtime.bigint() / 1000n);
        const exited = new Promise((resolve) => proc.once("close", resolve));
        proc.stdin!.end();
        await exited;
        // One profile per thread (tsx's loader has one): the main thread's is thread id 0,
        // CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile.
        const dir = path.join(OUT, name);
        const main = readdirSync(dir).find((f) => f.split(".")[4] === "0");
        if (!main) throw new Error(`no main-thread profile in ${dir}`);
        const profile = JSON.parse(readFileSync(path.join(dir, main), "utf8")) as CpuProfile;
        const per = new Map([...attribute(profile, from, to)].map(([k, v]) => [k, v / requests]));
        ((results[mode] ??= {})[system] ??= []).push(per);
        const busy = [...per].filter(([k]) => k !== "idle").reduce((a, [, v]) => a + v, 0);
        process.stderr.write(`${name}: ${rps} req/s, main thread busy ${busy.toFixed(0)} µs/request\n`);
      }
    }
  }
  for (const mode of modes) {
    const bySystem = results[mode]!;
    const buckets = [...new Set(Object.values(bySystem).flatMap((ms) => ms.flatMap((m) => [...m.keys()])))];
    const med = (system: string, b: string): number => median(bySystem[system]!.map((m) => m.get(b) ?? 0));
    const busy = (system: string): number =>
      median(bySystem[system]!.map((m) => [...m].filter(([k]) => k !== "idle").reduce((a, [, v]) => a + v, 0)));
    buckets.sort((a, b) => med(systems[0]!, b) - med(systems[0]!, a));
    console.log(`\n${mode}, main thread, µs per request, median of ${args.repeat}\n`);
    console.log(`| bucket | ${systems.join(" | ")} |\n|---|${systems.map(() => "---|").join("")}`);
    // Native functions under 2 µs everywhere are summed into one row.
    const small = (b: string): boolean => b.startsWith("native: ") && systems.every((s) => med(s, b) < 2);
    for (const b of buckets.filter((b) => b !== "idle" && !small(b))) {
      console.log(`| ${b} | ${systems.map((s) => med(s, b).toFixed(1)).join(" | ")} |`);
    }
    const rest = (s: string): number => buckets.filter(small).reduce((a, b) => a + med(s, b), 0);
    console.log(`| other native functions | ${systems.map((s) => rest(s).toFixed(1)).join(" | ")} |`);
    console.log(`| **busy total** | ${systems.map((s) => busy(s).toFixed(0)).join(" | ")} |`);
    console.log(`| idle | ${systems.map((s) => med(s, "idle").toFixed(0)).join(" | ")} |`);
  }
} finally {
  load.stdin!.end();
  await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
  await admin.end();
}
