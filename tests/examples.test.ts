// Every app under examples/ run on its platform, as a user would copy it: the Cloudflare Worker
// under `wrangler dev` (from a copy of its folder, configured by .dev.vars) and in workerd through
// Miniflare, both with their cron trigger; the Vercel Edge routes in edge-runtime; Deno.serve in
// a child `deno` process; Node in a child `node` process; the Hono middleware in-process.
// The Neon-transport examples reach the local PostgreSQL through `pgsession dev-proxy`, started
// by this file as a user starts it, with the one setting its banner prints
// (DATABASE_HTTP_ENDPOINT); its request log counts the statements each example sends. Each
// example gets its own table in a per-run schema.
//
// Node only: `node --import tsx --test tests/examples.test.ts`.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { databaseUrl } from "./support/harness.ts";
import { schemaSql } from "../mod.ts";

const IN_DENO = "Deno" in globalThis;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SCHEMA = `examples_test_${randomBytes(4).toString("hex")}`;
const SECRET = "examples-test-secret-of-at-least-32-characters";
const CRON_SECRET = "examples-cron-secret";
const TABLES = ["wrangler", "worker", "edge", "deno", "node", "hono"] as const;
const table = (name: (typeof TABLES)[number]): string => `${SCHEMA}.${name}`;

let proxy: Listening;
let db: pg.Client;
const rows = async (name: (typeof TABLES)[number]): Promise<string[]> =>
  (await db.query(`SELECT session_key FROM ${table(name)} ORDER BY session_key`)).rows.map((r) =>
    r.session_key as string
  );

/** The dev proxy's `/sql` URL, as its banner prints it. */
const endpoint = (): string => /^ {2}DATABASE_HTTP_ENDPOINT=(\S+)$/m.exec(proxy.output())![1]!;

/** What the dev proxy's request log shows from `mark` (an earlier output length) on. */
function proxied(mark: number): { requests: number; statements: number; failed: string[] } {
  const lines = proxy.output().slice(mark).split("\n").filter((line) => line.startsWith("POST /sql "));
  const statements = lines.reduce(
    (sum, line) => sum + Number(/^POST \/sql \d+ (\d+) statement/.exec(line)?.[1] ?? NaN),
    0,
  );
  return { requests: lines.length, statements, failed: lines.filter((line) => !line.startsWith("POST /sql 200 ")) };
}

/** The example reached the database through the proxy only, and every request succeeded. */
function assertProxied(mark: number, minimum: number): number {
  const seen = proxied(mark);
  assert.deepEqual(seen.failed, [], "every request through the dev proxy succeeded");
  assert.ok(seen.statements >= minimum, `at least ${minimum} statements through the dev proxy, saw ${seen.statements}`);
  return seen.statements;
}

/**
 * Bundles like a Workers or Vercel build (no Node built-ins), "pgsession" being this repository's
 * mod.ts; `entry` is a small wrapper around the example (the router Next.js would generate).
 */
async function bundleExample(
  entry: string,
  options: { format: "esm" | "iife"; conditions: string[]; define?: Record<string, string> },
): Promise<string> {
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
    alias: { pgsession: "./mod.ts", "pgsession/hono": "./src/hono.ts" },
    define: options.define ?? {},
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}

/** Rows whose expiry has passed by the database clock, plus one live row; returns the live key. */
async function seedExpired(name: (typeof TABLES)[number], expired: number): Promise<string> {
  const key = (): string => createHash("sha256").update(randomBytes(16)).digest("hex");
  for (let i = 0; i < expired; i++) {
    await db.query(`INSERT INTO ${table(name)} VALUES ($1, '\\x00', (now() AT TIME ZONE 'UTC') - interval '1 hour')`, [
      key(),
    ]);
  }
  const live = key();
  await db.query(`INSERT INTO ${table(name)} VALUES ($1, '\\x00', (now() AT TIME ZONE 'UTC') + interval '1 hour')`, [
    live,
  ]);
  return live;
}

/** Two visits through a cookie jar of one: the counter goes 1, 2 and one row is stored. */
async function countsVisits(
  fetcher: (path: string, init?: RequestInit) => Promise<Response>,
  name: (typeof TABLES)[number],
  parse: (body: string) => number,
): Promise<string> {
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

interface Listening {
  url: string;
  stop(): Promise<void>;
  output(): string;
}

/**
 * Spawns a server and waits for the line `ready` matches (its first group is the base URL). The
 * child leads its own process group, so stopping it also stops what it started (wrangler's workerd).
 */
function spawnListening(
  command: string,
  args: string[],
  env: Record<string, string | undefined>,
  options: { cwd?: string; ready?: RegExp; timeoutMs?: number } = {},
): Promise<Listening> {
  const ready = options.ready ?? /Listening on (http:\/\/[^/\s]+)/;
  const child: ChildProcess = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const killer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, 10_000);
    await exited;
    clearTimeout(killer);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => void stop().then(() => reject(new Error(`${command} ${args.join(" ")}: not ready in time\n${output}`))),
      options.timeoutMs ?? 30_000,
    );
    void exited.then(() => reject(new Error(`${command} ${args.join(" ")} exited early\n${output}`)));
    const onData = (chunk: string): void => {
      output += chunk;
      const match = ready.exec(output);
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
    // As a user starts it: the command, the database, any free port.
    proxy = await spawnListening(
      process.execPath,
      ["--import", "tsx", "cli/pgsession.ts", "dev-proxy", "--database", databaseUrl(), "--port", "0"],
      {},
      {
        ready: /^Ctrl-C stops it\.$()/m,
      },
    );
    assert.match(proxy.output(), /^Listening on http:\/\/127\.0\.0\.1:\d+ \(loopback only/m);
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
      await proxy?.stop();
    }
  });

  test("Cloudflare Worker under wrangler dev: .dev.vars points it at the dev proxy; visits count and the cron handler collects", async (t) => {
    // The example's folder as a user has it, with the .dev.vars its example file describes.
    const dir = mkdtempSync(join(tmpdir(), "pgsession-wrangler-"));
    cpSync(`${ROOT}examples/cloudflare-worker`, dir, { recursive: true });
    // "pgsession" is this repository's source, where a user's project has the installed package
    // (wrangler dev applies the config's [alias], not the --alias flag).
    writeFileSync(
      join(dir, "wrangler.toml"),
      `${readFileSync(join(dir, "wrangler.toml"), "utf8")}\n[alias]\npgsession = ${JSON.stringify(`${ROOT}mod.ts`)}\n`,
    );
    const example = readFileSync(join(dir, ".dev.vars.example"), "utf8");
    assert.match(example, /^DATABASE_HTTP_ENDPOINT=http:\/\/127\.0\.0\.1:4444\/sql$/m);
    writeFileSync(
      join(dir, ".dev.vars"),
      example
        .replace(/^DATABASE_URL=.*$/m, `DATABASE_URL=${databaseUrl()}`)
        .replace(/^DATABASE_HTTP_ENDPOINT=.*$/m, `DATABASE_HTTP_ENDPOINT=${endpoint()}`) +
        `SESSION_TABLE=${table("wrangler")}\n`,
    );
    const mark = proxy.output().length;
    const wrangler = await spawnListening(
      `${ROOT}node_modules/.bin/wrangler`,
      [
        "dev",
        "--local",
        "--ip",
        "127.0.0.1",
        "--port",
        "0",
        "--inspector-port",
        "0",
        "--persist-to",
        join(dir, ".state"),
        "--show-interactive-dev-session=false",
      ],
      {
        // Nothing leaves the machine: no metrics, no update check, no Request.cf download (Miniflare
        // uses its placeholder when NODE_ENV is "test"), no account.
        WRANGLER_SEND_METRICS: "false",
        WRANGLER_HIDE_BANNER: "true",
        NODE_ENV: "test",
        CLOUDFLARE_API_TOKEN: undefined,
        CLOUDFLARE_ACCOUNT_ID: undefined,
        WRANGLER_LOG_PATH: join(dir, "logs"),
        XDG_CONFIG_HOME: join(dir, "config"),
      },
      { cwd: dir, ready: /Ready on (http:\/\/127\.0\.0\.1:\d+)/, timeoutMs: 90_000 },
    );
    try {
      const cookie = await countsVisits((path, init) => fetch(wrangler.url + path, init), "wrangler", textVisits);
      assert.match(cookie, /^__Host-session=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]+$/, "signed, with the __Host- prefix");
      const live = (await rows("wrangler"))[0]!;
      const seeded = await seedExpired("wrangler", 3);
      // wrangler dev's trigger for the scheduled handler; it answers once the event is done.
      const res = await fetch(`${wrangler.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent("0 * * * *")}`);
      assert.equal(res.status, 200, await res.text());
      for (let i = 0; i < 50 && (await rows("wrangler")).length !== 2; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(await rows("wrangler"), [live, seeded].sort(), "the expired rows are gone, the live ones stay");
      t.diagnostic(`${assertProxied(mark, 3)} statements through the dev proxy`);
      assert.doesNotMatch(
        wrangler.output(),
        /getaddrinfo|ENOTFOUND|Unable to fetch/,
        "wrangler did not try to reach the internet",
      );
    } catch (error) {
      throw Object.assign(error as Error, {
        message: `${(error as Error).message}\nwrangler output: ${wrangler.output()}`,
      });
    } finally {
      await wrangler.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("Cloudflare Worker: counts visits with a signed __Host- cookie, and its cron trigger collects expired sessions", async (t) => {
    const { Miniflare } = await import("miniflare");
    const script = await bundleExample(`export { default } from "./examples/cloudflare-worker/src/index.ts";`, {
      format: "esm",
      conditions: ["workerd", "worker", "browser"],
    });
    const toml = await (await import("node:fs/promises")).readFile(
      `${ROOT}examples/cloudflare-worker/wrangler.toml`,
      "utf8",
    );
    const cron = /crons = \["([^"]+)"\]/.exec(toml)?.[1];
    assert.ok(cron, "wrangler.toml declares a cron trigger");
    const mf = new Miniflare({
      modules: true,
      script,
      compatibilityDate: /compatibility_date = "([^"]+)"/.exec(toml)![1]!,
      bindings: {
        DATABASE_URL: databaseUrl(),
        DATABASE_HTTP_ENDPOINT: endpoint(),
        SESSION_SECRET: SECRET,
        SESSION_TABLE: table("worker"),
      },
    });
    const mark = proxy.output().length;
    try {
      const cookie = await countsVisits(
        (path, init) => mf.dispatchFetch(`https://example.com${path}`, init as never) as unknown as Promise<Response>,
        "worker",
        textVisits,
      );
      assert.match(cookie, /^__Host-session=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]+$/, "signed, with the __Host- prefix");
      const live = (await rows("worker"))[0]!;
      const seeded = await seedExpired("worker", 3);
      const worker = (await mf.getWorker()) as unknown as {
        scheduled(o: { cron: string }): Promise<{ outcome: string }>;
      };
      assert.equal((await worker.scheduled({ cron })).outcome, "ok");
      // The event lasts until its waitUntil promises settle, so gc() has finished.
      assert.deepEqual(await rows("worker"), [live, seeded].sort(), "the expired rows are gone, the live ones stay");
      t.diagnostic(`${assertProxied(mark, 3)} statements through the dev proxy`);
    } finally {
      await mf.dispose();
    }
  });

  test("Vercel Edge: the session route counts visits and the cron route demands Bearer CRON_SECRET", async (t) => {
    const { EdgeRuntime, runServer } = await import("edge-runtime");
    const env: Record<string, string> = {
      DATABASE_URL: databaseUrl(),
      DATABASE_HTTP_ENDPOINT: endpoint(),
      SESSION_SECRET: SECRET,
      SESSION_TABLE: table("edge"),
      CRON_SECRET,
    };
    const define = Object.fromEntries(Object.entries(env).map(([k, v]) => [`process.env.${k}`, JSON.stringify(v)]));
    // The router Next.js would generate from app/api/**/route.ts.
    const entry = `import * as session from "./examples/vercel-edge/app/api/session/route.ts";
import * as cron from "./examples/vercel-edge/app/api/cron/gc/route.ts";
if (session.runtime !== "edge" || cron.runtime !== "edge") throw new Error("routes must declare runtime = edge");
addEventListener("fetch", (event) => {
  const path = new URL(event.request.url).pathname;
  const route = path === "/api/session" ? session : path === "/api/cron/gc" ? cron : null;
  event.respondWith(route ? route.GET(event.request) : new Response("Not found", { status: 404 }));
});`;
    const code = await bundleExample(entry, {
      format: "iife",
      conditions: ["edge-light", "worker", "browser"],
      define,
    });
    const server = await runServer({ runtime: new EdgeRuntime({ initialCode: code }), host: "127.0.0.1", port: 0 });
    const base = server.url.replace(/\/$/, "");
    const mark = proxy.output().length;
    try {
      const cookie = await countsVisits(
        (path, init) => fetch(`${base}/api/session${path === "/" ? "" : path}`, init),
        "edge",
        (body) => JSON.parse(body).visits,
      );
      assert.match(cookie, /^session=/, 'secure: "auto" over plain http: no __Host- prefix');
      for (
        const headers of [{}, { authorization: "Bearer wrong" }, { authorization: CRON_SECRET }] as Record<
          string,
          string
        >[]
      ) {
        const res = await fetch(`${base}/api/cron/gc`, { headers });
        assert.equal(res.status, 401, JSON.stringify(headers));
        await res.body?.cancel();
      }
      await seedExpired("edge", 3);
      const res = await fetch(`${base}/api/cron/gc`, { headers: { authorization: `Bearer ${CRON_SECRET}` } });
      assert.equal(res.status, 200);
      assert.deepEqual({ ...(await res.json()), batches: undefined }, { deleted: 3, batches: undefined, done: true });
      assert.equal((await rows("edge")).length, 2);
      t.diagnostic(`${assertProxied(mark, 3)} statements through the dev proxy`);
    } finally {
      await server.close();
    }
  });

  test("Deno: Deno.serve counts visits through the dev proxy and Deno.cron is registered", async (t) => {
    const deno = fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url));
    // The example as a user runs it ("pgsession" maps to mod.ts in this repository's deno.json).
    const mark = proxy.output().length;
    const server = await spawnListening(deno, ["run", "-A", "--unstable-cron", "examples/deno/main.ts"], {
      DATABASE_URL: databaseUrl(),
      DATABASE_HTTP_ENDPOINT: endpoint(),
      SESSION_SECRET: SECRET,
      SESSION_TABLE: table("deno"),
      PORT: "0",
    });
    try {
      await countsVisits((path, init) => fetch(server.url + path, init), "deno", textVisits);
      t.diagnostic(`${assertProxied(mark, 2)} statements through the dev proxy`);
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
      alias: { pgsession: "./mod.ts", "pgsession/hono": "./src/hono.ts" },
      logLevel: "silent",
    });
    const { createApp } = (await import(
      `data:text/javascript;base64,${Buffer.from(built.outputFiles[0]!.text).toString("base64")}`
    )) as typeof import("../examples/hono/app.ts");
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    try {
      // Store options: withSession makes a store per request over the shared pool.
      const app = createApp({
        store: { client: pool, table: table("hono") },
        secrets: [SECRET],
        cookie: { secure: false },
      });
      const call = async (path: string, init?: RequestInit): Promise<Response> =>
        await app.fetch(new Request(`http://localhost${path}`, init));
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
