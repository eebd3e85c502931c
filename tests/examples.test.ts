// Every app under examples/ run on its platform, as a user would copy it: the Cloudflare Worker
// in workerd (Miniflare) with its cron trigger, the Vercel Edge routes in edge-runtime, Deno.serve
// in a child `deno` process, Node in a child `node` process, and the Hono middleware in-process.
// The Neon-transport examples reach the local PostgreSQL through the support server (Neon's /sql
// endpoint stand-in) of tests/support/; each example gets its own table in a per-run schema.
//
// Node only: `node --import tsx --test tests/examples.test.ts`.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { databaseUrl, startSupportServer, type SupportServer } from "./support/harness.ts";
import { schemaSql } from "../mod.ts";

const IN_DENO = "Deno" in globalThis;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SCHEMA = `examples_test_${randomBytes(4).toString("hex")}`;
const SECRET = "examples-test-secret-of-at-least-32-characters";
const CRON_SECRET = "examples-cron-secret";
const TABLES = ["worker", "edge", "deno", "node", "hono"] as const;
const table = (name: (typeof TABLES)[number]): string => `${SCHEMA}.${name}`;

let support: SupportServer;
let db: pg.Client;
const rows = async (name: (typeof TABLES)[number]): Promise<string[]> =>
  (await db.query(`SELECT session_key FROM ${table(name)} ORDER BY session_key`)).rows.map((r) => r.session_key as string);

/** Neon's HTTP endpoint and WebSocket proxy pointed at the support server, as JavaScript source. */
const neonWiring = (): string => `
import { neonConfig } from "@neondatabase/serverless";
neonConfig.fetchEndpoint = "http://127.0.0.1:${support.port}/sql";
neonConfig.wsProxy = (host, port) => "127.0.0.1:${support.port}/v1?address=" + host + ":" + port;
neonConfig.useSecureWebSocket = false;
neonConfig.pipelineConnect = false;
`;

/**
 * Bundles like a Workers or Vercel build (no Node built-ins), "pgsession" being this repository's
 * mod.ts; `entry` is a small wrapper that wires Neon to the support server around the example.
 */
async function bundleExample(entry: string, options: { format: "esm" | "iife"; conditions: string[]; define?: Record<string, string> }): Promise<string> {
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    stdin: { contents: entry, resolveDir: ROOT, loader: "ts", sourcefile: "example-entry.ts" },
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    format: options.format,
    platform: "neutral",
    target: "es2022",
    mainFields: ["browser", "module", "main"],
    conditions: options.conditions,
    alias: { pgsession: "./mod.ts" },
    define: options.define ?? {},
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}

/** Rows whose expiry has passed by the database clock, plus one live row; returns the live key. */
async function seedExpired(name: (typeof TABLES)[number], expired: number): Promise<string> {
  const key = (): string => createHash("sha256").update(randomBytes(16)).digest("hex");
  for (let i = 0; i < expired; i++) {
    await db.query(`INSERT INTO ${table(name)} VALUES ($1, '\\x00', (now() AT TIME ZONE 'UTC') - interval '1 hour')`, [key()]);
  }
  const live = key();
  await db.query(`INSERT INTO ${table(name)} VALUES ($1, '\\x00', (now() AT TIME ZONE 'UTC') + interval '1 hour')`, [live]);
  return live;
}

/** Two visits through a cookie jar of one: the counter goes 1, 2 and one row is stored. */
async function countsVisits(fetcher: (path: string, init?: RequestInit) => Promise<Response>, name: (typeof TABLES)[number], parse: (body: string) => number): Promise<string> {
  const first = await fetcher("/");
  assert.equal(first.status, 200);
  assert.equal(parse(await first.text()), 1);
  const setCookie = first.headers.getSetCookie();
  assert.equal(setCookie.length, 1, `one Set-Cookie: ${setCookie.join(" | ")}`);
  assert.match(setCookie[0]!, /; HttpOnly/);
  assert.match(setCookie[0]!, /; SameSite=Lax/);
  const cookie = setCookie[0]!.split(";")[0]!;
  const second = await fetcher("/", { headers: { cookie } });
  assert.equal(parse(await second.text()), 2);
  // Background commits (waitUntil) may land just after the response.
  for (let i = 0; i < 50 && (await rows(name)).length !== 1; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((await rows(name)).length, 1);
  return cookie;
}

const textVisits = (body: string): number => Number(/^visits: (\d+)$/m.exec(body)?.[1]);

/** Spawns a server and waits for its `Listening on http://…/` line. */
function spawnListening(command: string, args: string[], env: Record<string, string>): Promise<{ url: string; stop(): Promise<void>; output(): string }> {
  const child: ChildProcess = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(killer);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => void stop().then(() => reject(new Error(`${args.join(" ")}: no Listening line\n${output}`))), 30_000);
    void exited.then(() => reject(new Error(`${args.join(" ")} exited early\n${output}`)));
    const onData = (chunk: string): void => {
      output += chunk;
      const match = /Listening on (http:\/\/[^/\s]+)/.exec(output);
      if (!match) return;
      clearTimeout(timer);
      resolve({ url: match[1]!, stop, output: () => output });
    };
    child.stdout!.setEncoding("utf8").on("data", onData);
    child.stderr!.setEncoding("utf8").on("data", onData);
  });
}

describe("examples", { skip: IN_DENO && "runs under Node only; it starts the runtimes itself" }, () => {
  before(async () => {
    support = await startSupportServer();
    db = new pg.Client({ connectionString: databaseUrl() });
    await db.connect();
    await db.query(`CREATE SCHEMA ${SCHEMA}`);
    for (const name of TABLES) await db.query(schemaSql(table(name)));
  });

  after(async () => {
    try {
      await db?.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
      await db?.end();
    } finally {
      await support?.close();
    }
  });

  test("Cloudflare Worker: counts visits with a signed __Host- cookie, and its cron trigger collects expired sessions", async () => {
    const { Miniflare } = await import("miniflare");
    const script = await bundleExample(`${neonWiring()}\nexport { default } from "./examples/cloudflare-worker/src/index.ts";`, { format: "esm", conditions: ["workerd", "worker", "browser"] });
    const toml = await (await import("node:fs/promises")).readFile(`${ROOT}examples/cloudflare-worker/wrangler.toml`, "utf8");
    const cron = /crons = \["([^"]+)"\]/.exec(toml)?.[1];
    assert.ok(cron, "wrangler.toml declares a cron trigger");
    const mf = new Miniflare({
      modules: true,
      script,
      compatibilityDate: /compatibility_date = "([^"]+)"/.exec(toml)![1]!,
      bindings: { DATABASE_URL: databaseUrl(), SESSION_SECRET: SECRET, SESSION_TABLE: table("worker") },
    });
    try {
      const cookie = await countsVisits((path, init) => mf.dispatchFetch(`https://example.com${path}`, init as never) as unknown as Promise<Response>, "worker", textVisits);
      assert.match(cookie, /^__Host-session=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]+$/, "signed, with the __Host- prefix");
      const live = (await rows("worker"))[0]!;
      const seeded = await seedExpired("worker", 3);
      const worker = (await mf.getWorker()) as unknown as { scheduled(o: { cron: string }): Promise<{ outcome: string }> };
      assert.equal((await worker.scheduled({ cron })).outcome, "ok");
      // The event lasts until its waitUntil promises settle, so gc() has finished.
      assert.deepEqual(await rows("worker"), [live, seeded].sort(), "the expired rows are gone, the live ones stay");
    } finally {
      await mf.dispose();
    }
  });

  test("Vercel Edge: the session route counts visits and the cron route demands Bearer CRON_SECRET", async () => {
    const { EdgeRuntime, runServer } = await import("edge-runtime");
    const env: Record<string, string> = { DATABASE_URL: databaseUrl(), SESSION_SECRET: SECRET, SESSION_TABLE: table("edge"), CRON_SECRET };
    const define = Object.fromEntries(Object.entries(env).map(([k, v]) => [`process.env.${k}`, JSON.stringify(v)]));
    // The router Next.js would generate from app/api/**/route.ts.
    const entry = `${neonWiring()}
import * as session from "./examples/vercel-edge/app/api/session/route.ts";
import * as cron from "./examples/vercel-edge/app/api/cron/gc/route.ts";
if (session.runtime !== "edge" || cron.runtime !== "edge") throw new Error("routes must declare runtime = edge");
addEventListener("fetch", (event) => {
  const path = new URL(event.request.url).pathname;
  const route = path === "/api/session" ? session : path === "/api/cron/gc" ? cron : null;
  event.respondWith(route ? route.GET(event.request) : new Response("Not found", { status: 404 }));
});`;
    const code = await bundleExample(entry, { format: "iife", conditions: ["edge-light", "worker", "browser"], define });
    const server = await runServer({ runtime: new EdgeRuntime({ initialCode: code }), host: "127.0.0.1", port: 0 });
    const base = server.url.replace(/\/$/, "");
    try {
      const cookie = await countsVisits((path, init) => fetch(`${base}/api/session${path === "/" ? "" : path}`, init), "edge", (body) => JSON.parse(body).visits);
      assert.match(cookie, /^session=/, "secure: \"auto\" over plain http: no __Host- prefix");
      for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: CRON_SECRET }] as Record<string, string>[]) {
        const res = await fetch(`${base}/api/cron/gc`, { headers });
        assert.equal(res.status, 401, JSON.stringify(headers));
        await res.body?.cancel();
      }
      await seedExpired("edge", 3);
      const res = await fetch(`${base}/api/cron/gc`, { headers: { authorization: `Bearer ${CRON_SECRET}` } });
      assert.equal(res.status, 200);
      assert.deepEqual({ ...(await res.json()), batches: undefined }, { deleted: 3, batches: undefined, done: true });
      assert.equal((await rows("edge")).length, 2);
    } finally {
      await server.close();
    }
  });

  test("Deno: Deno.serve counts visits and Deno.cron is registered", async () => {
    const deno = fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url));
    // The example as a user runs it, with Neon pointed at the support server first.
    const code = `${neonWiring()}\nawait import("./examples/deno/main.ts");`;
    const server = await spawnListening(deno, ["eval", "--unstable-cron", code], {
      DATABASE_URL: databaseUrl(),
      SESSION_SECRET: SECRET,
      SESSION_TABLE: table("deno"),
      PORT: "0",
    });
    try {
      await countsVisits((path, init) => fetch(server.url + path, init), "deno", textVisits);
    } catch (error) {
      throw Object.assign(error as Error, { message: `${(error as Error).message}\ndeno output: ${server.output()}` });
    } finally {
      await server.stop();
    }
  });

  test("Node: http server with a pg.Pool counts visits", async () => {
    const server = await spawnListening(process.execPath, ["--import", "tsx", "examples/node/server.ts"], {
      TSX_TSCONFIG_PATH: "examples/tsconfig.json",
      DATABASE_URL: databaseUrl(),
      SESSION_SECRET: SECRET,
      SESSION_TABLE: table("node"),
      PORT: "0",
    });
    try {
      await countsVisits((path, init) => fetch(server.url + path, init), "node", textVisits);
    } finally {
      await server.stop();
    }
  });

  test("Hono: the sessions() middleware counts visits, regenerates on sign-in and destroys on sign-out", async () => {
    // Bundled with "pgsession" = this repository's mod.ts (a plain import would resolve the
    // package's own dist/ build), then loaded in this process.
    const esbuild = await import("esbuild");
    const built = await esbuild.build({
      entryPoints: [`${ROOT}examples/hono/app.ts`],
      absWorkingDir: ROOT,
      bundle: true,
      write: false,
      format: "esm",
      platform: "node",
      alias: { pgsession: "./mod.ts" },
      logLevel: "silent",
    });
    const { createApp } = (await import(`data:text/javascript;base64,${Buffer.from(built.outputFiles[0]!.text).toString("base64")}`)) as typeof import("../examples/hono/app.ts");
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    try {
      // Store options: withSession makes a store per request over the shared pool.
      const app = createApp({ store: { client: pool, table: table("hono") }, secrets: [SECRET], cookie: { secure: false } });
      const call = async (path: string, init?: RequestInit): Promise<Response> => await app.fetch(new Request(`http://localhost${path}`, init));
      const cookie = await countsVisits(call, "hono", textVisits);
      const signIn = await call("/sign-in?name=ada", { method: "POST", headers: { cookie } });
      assert.deepEqual(await signIn.json(), { user: "ada" });
      const fresh = signIn.headers.getSetCookie();
      assert.equal(fresh.length, 1);
      assert.notEqual(fresh[0]!.split(";")[0], cookie, "a new id on sign-in");
      assert.equal((await rows("hono")).length, 1, "the old row is gone");
      const out = await call("/sign-out", { method: "POST", headers: { cookie: fresh[0]!.split(";")[0]! } });
      assert.equal(out.status, 204);
      assert.match(out.headers.getSetCookie()[0]!, /Max-Age=0/);
      assert.equal((await rows("hono")).length, 0);
    } finally {
      await pool.end();
    }
  });
});
