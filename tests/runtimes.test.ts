// The shared app (tests/runtimes/app.ts) on every runtime pgsession supports, each for real:
//   Node            Node's `http` + our Request/Response bridge, in this process, a Neon Pool
//   Deno            `Deno.serve` in a child `deno run` process, Neon's HTTP transport
//   Workers         bundled with esbuild, run in workerd by Miniflare: HTTP transport (also with
//                   nodejs_compat), a per-request Pool (commit inline or in waitUntil), and the
//                   `scheduled` handler running gc()
//   Vercel Edge     bundled with esbuild, run in the `edge-runtime` VM behind its HTTP server,
//                   plus the cron route guarded by CRON_SECRET
// All of them reach the local PostgreSQL through the support server (Neon's /sql endpoint and
// WebSocket proxy), and the same scenario (tests/runtimes/scenario.ts) checks cookies and rows.
// Each also serves the app under /snap/ with `snapshot` on, signed cookies and Neon's HTTP
// transport, where tests/runtimes/snapshot_scenario.ts counts the round trips of every request.
//
// Node only: `node --import tsx --test tests/runtimes.test.ts`. Deno is exercised as a child
// process, so `deno test` must skip this file (it also skips itself when run by Deno).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { Pool } from "@neondatabase/serverless";
import { configureNeon, databaseUrl, startSupportServer, type SupportServer } from "./support/harness.ts";
import { PostgresStore, schemaSql } from "../mod.ts";
import { type AppData, type AppOptions, createApp, SNAPSHOT_PREFIX, underPrefix } from "./runtimes/app.ts";
import { type NodeServer, serveNode } from "./runtimes/node_server.ts";
import { eventually, keyOf, type Rows, runScenario, type ScenarioTarget, tokenOf } from "./runtimes/scenario.ts";
import { runSnapshotScenario, type SnapshotTarget } from "./runtimes/snapshot_scenario.ts";
import { type ChildServer, spawnServer } from "./runtimes/spawn.ts";
import { bundle } from "./runtimes/bundle.ts";

const IN_DENO: boolean = "Deno" in globalThis;
const ROOT: string = fileURLToPath(new URL("../", import.meta.url));
// Own schema per run: parallel test files and reruns never collide.
const SCHEMA: string = `runtimes_test_${randomBytes(4).toString("hex")}`;
const SECRET: string = "runtimes-test-secret-of-at-least-32-characters";
const CRON_SECRET: string = "cron-secret-for-the-test";
// Workers need a compatibility date workerd supports; this Miniflare's workerd is 2025-12-17.
const COMPATIBILITY_DATE: string = "2025-09-01";
// Short enough to be the bound issue 18 names; each scenario step takes milliseconds.
const SNAPSHOT_MAX_AGE: number = 5;

const table = (name: string): string => `${SCHEMA}.${name}`;

let support: SupportServer;
let db: pg.Client;

const query = async (text: string, params?: unknown[]): Promise<Rows> => (await db.query(text, params)).rows;

function target(
  base: string,
  tableName: string,
  extra: Partial<ScenarioTarget> & Pick<ScenarioTarget, "signed" | "transport" | "background">,
): ScenarioTarget {
  return {
    base,
    table: table(tableName),
    query,
    stats: () => support.stats(),
    reset: () => support.reset(),
    lockRow,
    ...extra,
  };
}

/** A snapshot scenario target: the app under /snap/ at `base`, writing to `tableName`. */
function snapshotTarget(
  base: string,
  tableName: string,
  extra: Partial<SnapshotTarget> & Pick<SnapshotTarget, "background">,
): SnapshotTarget {
  return {
    base: `${base}${SNAPSHOT_PREFIX}`,
    table: table(tableName),
    query,
    cookieName: "session",
    maxAge: SNAPSHOT_MAX_AGE,
    secret: SECRET,
    stats: () => support.stats(),
    reset: () => support.reset(),
    lockRow,
    ...extra,
  };
}

async function lockRow(qualified: string, key: string): Promise<() => Promise<void>> {
  const client: pg.Client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
  try {
    await client.query("BEGIN");
    const locked = await client.query(`SELECT 1 FROM ${qualified} WHERE session_key = $1 FOR UPDATE`, [key]);
    assert.equal(locked.rowCount, 1, `no row to lock in ${qualified}`);
  } catch (error) {
    await client.end();
    throw error;
  }
  return async () => {
    try {
      await client.query("ROLLBACK");
    } finally {
      await client.end();
    }
  };
}

/** Rows whose expiry has passed by the database clock, plus one live row, for gc tests. */
async function seedForGc(tableName: string, expired: number): Promise<string> {
  const key = (): string => createHash("sha256").update(randomBytes(16)).digest("hex");
  for (let i = 0; i < expired; i++) {
    await query(
      `INSERT INTO ${table(tableName)} VALUES ($1, '\\x00', (now() AT TIME ZONE 'UTC') - interval '1 hour')`,
      [key()],
    );
  }
  const live: string = key();
  await query(`INSERT INTO ${table(tableName)} VALUES ($1, '\\x00', (now() AT TIME ZONE 'UTC') + interval '1 hour')`, [
    live,
  ]);
  return live;
}

describe("runtimes", { skip: IN_DENO && "runs under Node only; it starts Deno itself" }, () => {
  before(async () => {
    support = await startSupportServer();
    // For the in-process Node server; the other runtimes get the port and configure themselves.
    configureNeon(support.port);
    db = new pg.Client({ connectionString: databaseUrl() });
    await db.connect();
    await query(`CREATE SCHEMA ${SCHEMA}`);
    for (
      const name of [
        "node_session",
        "deno_session",
        "worker_http_session",
        "worker_pool_session",
        "worker_pool_bg_session",
        "worker_compat_session",
        "edge_session",
        "node_snapshot_session",
        "deno_snapshot_session",
        "worker_snapshot_session",
        "edge_snapshot_session",
      ]
    ) {
      await db.query(schemaSql(table(name)));
    }
  });

  after(async () => {
    try {
      await db?.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
      await db?.end();
    } finally {
      await support?.close();
    }
  });

  describe("Node: http.createServer with a Request/Response bridge", () => {
    let pool: Pool;
    let server: NodeServer;

    before(async () => {
      // Long-lived processes may share a Pool and a store across requests.
      pool = new Pool({ connectionString: databaseUrl() });
      const store: PostgresStore<AppData> = new PostgresStore<AppData>({ client: pool, table: table("node_session") });
      const options: AppOptions = { store, secrets: [SECRET], cookie: { secure: false } };
      const app = createApp(() => options);
      // Under /snap/: Neon's HTTP transport, so each statement is a counted round trip.
      const snapshotOptions: AppOptions = {
        store: {
          connectionString: databaseUrl(),
          fetchEndpoint: `${support.url}/sql`,
          table: table("node_snapshot_session"),
        },
        secrets: [SECRET],
        cookie: { secure: false },
        snapshot: { maxAge: SNAPSHOT_MAX_AGE },
      };
      const snapshotApp = createApp(() => snapshotOptions);
      server = await serveNode((req: Request) => {
        const snap: Request | null = underPrefix(req, SNAPSHOT_PREFIX);
        return snap ? snapshotApp(snap) : app(req);
      });
    });

    after(async () => {
      await server?.close();
      await pool?.end();
    });

    test("signs in, reads, modifies, regenerates and signs out through real cookies (Neon Pool over WebSocket)", async () => {
      await runScenario(target(server.url, "node_session", { signed: true, transport: "ws", background: false }));
    });

    test("snapshot: a fresh read costs 0 round trips, a change 1, a tampered snapshot 1, a due touch 1 inline; sign-out clears it at once, elsewhere after maxAge", async () => {
      await runSnapshotScenario(snapshotTarget(server.url, "node_snapshot_session", { background: false }));
    });
  });

  describe("Deno: Deno.serve in a child process", () => {
    let server: ChildServer;

    before(async () => {
      server = await spawnServer(fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url)), [
        "run",
        "-A",
        "tests/runtimes/deno_server.ts",
      ], {
        cwd: ROOT,
        env: {
          SUPPORT_PORT: String(support.port),
          DATABASE_URL: databaseUrl(),
          SESSION_TABLE: table("deno_session"),
          SESSION_SECRET: SECRET,
          SNAPSHOT_TABLE: table("deno_snapshot_session"),
          SNAPSHOT_MAX_AGE: String(SNAPSHOT_MAX_AGE),
          NO_COLOR: "1",
          DENO_NO_UPDATE_CHECK: "1",
        },
      });
    });

    after(async () => {
      await server?.close();
    });

    test("signs in, reads, modifies, regenerates and signs out through real cookies (HTTP transport, unsigned cookie)", async () => {
      try {
        await runScenario(target(server.url, "deno_session", { signed: false, transport: "http", background: false }));
      } catch (error) {
        throw Object.assign(error as Error, {
          message: `${(error as Error).message}\ndeno stderr: ${server.stderr()}`,
        });
      }
    });

    test("snapshot: a fresh read costs 0 round trips, a change 1, a tampered snapshot 1, a due touch 1 inline; sign-out clears it at once, elsewhere after maxAge", async () => {
      try {
        await runSnapshotScenario(snapshotTarget(server.url, "deno_snapshot_session", { background: false }));
      } catch (error) {
        throw Object.assign(error as Error, {
          message: `${(error as Error).message}\ndeno stderr: ${server.stderr()}`,
        });
      }
    });

    test("nothing the library does prints Deno.serve's legacy request.signal notice", () => {
      // The scenario above signed in, wrote, regenerated and signed out: every commit path ran.
      assert.doesNotMatch(server.stderr(), /request\.signal|legacy behavior/);
    });
  });

  describe("Cloudflare Workers: module worker in workerd via Miniflare", () => {
    // Loaded lazily: nothing of Miniflare is touched when this file is merely imported.
    let mf: import("miniflare").Miniflare;
    const poolApplicationName: string = `${SCHEMA}_worker_pool`;
    const dispatch = (url: string, init?: RequestInit): Promise<Response> =>
      mf.dispatchFetch(url, init as never) as unknown as Promise<Response>;
    // The same bundle with `nodejs_compat`: a global Buffer changes what cbor-x returns.
    let compat: { fetch(url: string, init?: RequestInit): Promise<Response> };

    before(async () => {
      const { Miniflare } = await import("miniflare");
      const script: string = await bundle("./worker_entry.ts", {
        format: "esm",
        conditions: ["workerd", "worker", "browser"],
      });
      const poolUrl: URL = new URL(databaseUrl());
      poolUrl.searchParams.set("application_name", poolApplicationName);
      const bindings: Record<string, string> = {
        SUPPORT_PORT: String(support.port),
        DATABASE_URL: databaseUrl(),
        POOL_DATABASE_URL: poolUrl.href,
        HTTP_TABLE: table("worker_http_session"),
        POOL_TABLE: table("worker_pool_session"),
        POOL_BG_TABLE: table("worker_pool_bg_session"),
        SNAPSHOT_TABLE: table("worker_snapshot_session"),
        SNAPSHOT_MAX_AGE: String(SNAPSHOT_MAX_AGE),
        SESSION_SECRET: SECRET,
      };
      // One workerd process, two workers; dispatchFetch goes to the first.
      mf = new Miniflare({
        // The fallback `request.cf` object: no download of cf.json from workers.cloudflare.com.
        cf: false,
        workers: [
          { name: "plain", modules: true, script, compatibilityDate: COMPATIBILITY_DATE, bindings },
          {
            name: "nodejs-compat",
            modules: true,
            script,
            compatibilityDate: COMPATIBILITY_DATE,
            compatibilityFlags: ["nodejs_compat"],
            bindings: { ...bindings, HTTP_TABLE: table("worker_compat_session") },
          },
        ],
      });
      await mf.ready;
      compat = (await mf.getWorker("nodejs-compat")) as unknown as typeof compat;
    });

    after(async () => {
      await mf?.dispose();
    });

    test("HTTP transport, commit in ctx.waitUntil: signs in, reads, modifies, regenerates and signs out", async () => {
      await runScenario(
        target("http://localhost/http", "worker_http_session", {
          fetch: dispatch,
          signed: true,
          transport: "http",
          background: true,
        }),
      );
    });

    test("withSession with snapshot, commit in ctx.waitUntil: a fresh read costs 0 round trips, a change 1, a tampered snapshot 1, a due touch 0 before the response; sign-out clears it at once, elsewhere after maxAge", async () => {
      await runSnapshotScenario(
        snapshotTarget("http://localhost", "worker_snapshot_session", { fetch: dispatch, background: true }),
      );
    });

    test("HTTP transport under nodejs_compat (a global Buffer): the same scenario passes", async () => {
      const globals: Response = await compat.fetch("http://localhost/__globals");
      assert.deepEqual(await globals.json(), { Buffer: "function" });
      assert.deepEqual(await (await dispatch("http://localhost/__globals")).json(), { Buffer: "undefined" });
      await runScenario(target("http://localhost/http", "worker_compat_session", {
        fetch: (url: string, init?: RequestInit) => compat.fetch(url, init),
        signed: true,
        transport: "http",
        background: true,
      }));
    });

    const backends = async (): Promise<number> =>
      Number(
        (await query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", [poolApplicationName]))[
          0
        ]!.n,
      );

    for (
      const [prefix, tableName, background, how] of [
        ["pool", "worker_pool_session", false, "commit, then release: ctx.waitUntil(pool.end())"],
        ["pool-bg", "worker_pool_bg_session", true, "commit in ctx.waitUntil, then release: pool.end()"],
      ] as const
    ) {
      test(`per-request Pool over WebSocket (${how}): signs in, reads, modifies, regenerates and signs out`, async () => {
        await runScenario(
          target(`http://localhost/${prefix}`, tableName, {
            fetch: dispatch,
            signed: true,
            transport: "ws",
            background,
          }),
        );
        await eventually(async () => assert.equal(await backends(), 0, "every request's pool was ended"));
      });

      test(`per-request Pool (${how}): connects during its request and is ended after the commit`, async () => {
        await eventually(async () => assert.equal(await backends(), 0));
        // Slow the proxy so that the request's connection is observable while it is open.
        await support.setDelay(300);
        let login: Promise<Response>;
        try {
          login = dispatch(`http://localhost/${prefix}/login?user=pat`, { method: "POST" });
          await eventually(async () => assert.equal(await backends(), 1, "the request's own connection"));
        } finally {
          await support.setDelay(0);
        }
        const res: Response = await login;
        assert.equal(res.status, 200);
        const cookie: string = res.headers.getSetCookie().find((c) => c.startsWith("session="))!.split(";")[0]!;
        await eventually(async () => assert.equal(await backends(), 0, "pool.end() ran after the commit"));
        const key: string = keyOf(tokenOf(cookie.slice("session=".length)));
        const stored = async (): Promise<number> =>
          (await query(`SELECT 1 FROM ${table(tableName)} WHERE session_key = $1`, [key])).length;
        await eventually(async () => assert.equal(await stored(), 1));
        const out: Response = await dispatch(`http://localhost/${prefix}/logout`, {
          method: "POST",
          headers: { cookie },
        });
        assert.equal(out.status, 204);
        await eventually(async () => assert.equal(await stored(), 0));
        await eventually(async () => assert.equal(await backends(), 0));
      });
    }

    test("the scheduled handler collects expired sessions with gc() in ctx.waitUntil", async () => {
      const live: string = await seedForGc("worker_http_session", 5);
      const worker = (await mf.getWorker()) as unknown as {
        scheduled(o: { cron: string }): Promise<{ outcome: string }>;
      };
      const result: { outcome: string } = await worker.scheduled({ cron: "*/5 * * * *" });
      assert.equal(result.outcome, "ok");
      // The event lasts until its waitUntil promises settle, so gc() has finished.
      assert.deepEqual(
        (await query(`SELECT session_key FROM ${table("worker_http_session")}`)).map((r) => r.session_key),
        [live],
      );
      await query(`DELETE FROM ${table("worker_http_session")}`);
    });
  });

  describe("Vercel Edge: edge-runtime VM behind its HTTP server", () => {
    let runtime: import("edge-runtime").EdgeRuntime;
    let server: Awaited<ReturnType<typeof import("edge-runtime").runServer>>;

    before(async () => {
      const { EdgeRuntime, runServer } = await import("edge-runtime");
      const env: Record<string, string> = {
        SUPPORT_PORT: String(support.port),
        DATABASE_URL: databaseUrl(),
        SESSION_TABLE: table("edge_session"),
        SNAPSHOT_TABLE: table("edge_snapshot_session"),
        SNAPSHOT_MAX_AGE: String(SNAPSHOT_MAX_AGE),
        SESSION_SECRET: SECRET,
        CRON_SECRET,
      };
      // The VM has no `process`: env is compiled in.
      const define: Record<string, string> = Object.fromEntries(
        Object.entries(env).map(([k, v]) => [`process.env.${k}`, JSON.stringify(v)]),
      );
      const code: string = await bundle("./edge_entry.ts", {
        format: "iife",
        conditions: ["edge-light", "worker", "browser"],
        define,
      });
      // No code generation, as on Vercel: cbor-x must be the no-eval build.
      runtime = new EdgeRuntime({ initialCode: code });
      server = await runServer({ runtime, host: "127.0.0.1", port: 0 });
    });

    after(async () => {
      await server?.close();
    });

    const base = (): string => server.url.replace(/\/$/, "");

    test('HTTP transport, commit in the event\'s waitUntil, secure: "auto" over http: signs in, reads, modifies, regenerates and signs out', async () => {
      await runScenario(target(base(), "edge_session", { signed: true, transport: "http", background: true }));
    });

    test('secure: "auto" over https gives a Secure __Host- cookie', async () => {
      // Straight into the VM, as if behind Vercel's TLS front end.
      const login = await runtime.dispatchFetch("https://app.example/login?user=tls", { method: "POST" });
      assert.equal(login.status, 200);
      await login.waitUntil();
      const set: string | undefined = login.headers.getSetCookie().find((c: string) => c.startsWith("__Host-session="));
      assert.ok(set, `cookies: ${login.headers.getSetCookie()}`);
      assert.match(set, /; Secure(;|$)/);
      assert.match(set, /; Path=\/(;|$)/);
      assert.doesNotMatch(set, /; Domain=/i);
      const cookie: string = set.split(";")[0]!;
      const key: string = keyOf(tokenOf(cookie.slice("__Host-session=".length)));
      assert.equal((await query(`SELECT 1 FROM ${table("edge_session")} WHERE session_key = $1`, [key])).length, 1);
      const out = await runtime.dispatchFetch("https://app.example/logout", { method: "POST", headers: { cookie } });
      assert.equal(out.status, 204);
      await out.waitUntil();
      assert.equal((await query(`SELECT 1 FROM ${table("edge_session")}`)).length, 0);
    });

    test('snapshot over https (secure: "auto"), commit in the event\'s waitUntil: __Host- cookies, a fresh read costs 0 round trips, a change 1, a tampered snapshot 1, a due touch 0 before the response; sign-out clears it at once, elsewhere after maxAge', async () => {
      // Straight into the VM, as if behind Vercel's TLS front end.
      await runSnapshotScenario(snapshotTarget("https://app.example", "edge_snapshot_session", {
        fetch: (url: string, init?: RequestInit) => runtime.dispatchFetch(url, init),
        cookieName: "__Host-session",
        background: true,
      }));
    });

    test("the cron route refuses requests without Bearer CRON_SECRET", async () => {
      await support.reset();
      for (
        const headers of [{}, { authorization: "Bearer wrong" }, { authorization: CRON_SECRET }, {
          authorization: `Basic ${CRON_SECRET}`,
        }] as Record<string, string>[]
      ) {
        const res: Response = await fetch(`${base()}/api/cron/gc`, { headers });
        assert.equal(res.status, 401, JSON.stringify(headers));
        await res.body?.cancel();
      }
      assert.equal((await support.stats()).http.statements, 0, "no SQL for an unauthorized call");
    });

    test("the cron route collects expired sessions with gc() in batches", async () => {
      const live: string = await seedForGc("edge_session", 5);
      const res: Response = await fetch(`${base()}/api/cron/gc`, {
        headers: { authorization: `Bearer ${CRON_SECRET}` },
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { deleted: 5, batches: 3, done: true });
      assert.deepEqual((await query(`SELECT session_key FROM ${table("edge_session")}`)).map((r) => r.session_key), [
        live,
      ]);
      await query(`DELETE FROM ${table("edge_session")}`);
    });
  });
});
