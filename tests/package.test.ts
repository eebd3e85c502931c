// The published artefacts: the two manifests agree, schema.sql is what schemaSql() says and runs
// twice, and the npm tarball installs into an empty folder and works there.
//
// The tarball is made as publishing makes it: `npm pack` on a copy of the repository's files as
// a fresh clone has them (git's tracked and unignored files, no dist/), with node_modules linked
// for the toolchain and no build step first, so the package must build itself (`prepack`). The
// copy keeps parallel test files that read dist/ undisturbed.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { schemaSql } from "../mod.ts";
import { databaseUrl, dbSkip, randomSchema } from "./_db.ts";
import { VERSION } from "../cli/_version.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const run = promisify(execFile);

interface PackageJson {
  name: string;
  version: string;
  exports: Record<string, unknown>;
  imports?: Record<string, unknown>;
  bin?: string | Record<string, string>;
  files?: string[];
  scripts: Record<string, string>;
  repository?: { url: string };
  homepage?: string;
  bugs?: { url: string };
  keywords?: string[];
}

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as PackageJson;
const denoJson = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8")) as {
  version: string;
  exports: string | Record<string, string>;
};
/** JSR has no `bin`: the command is an export there, `deno run -A jsr:@pgsession/pgsession/cli`. */
const JSR_ONLY_EXPORTS = ["./cli"];
const NODE = "Deno" in globalThis ? "node" : process.execPath;

/** Runs a command; on failure the error carries its output. */
async function sh(cmd: string, args: string[], cwd: string, timeout = 120_000): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, {
      cwd,
      timeout,
      maxBuffer: 32 * 1024 * 1024,
      env: { ...process.env, npm_config_update_notifier: "false" },
    });
    return stdout;
  } catch (error) {
    const e = error as { message: string; stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

/** Every file path a manifest entry points at (`./dist/mod.js` → `dist/mod.js`). */
function targets(value: unknown): string[] {
  if (typeof value === "string") return [value.replace(/^\.\//, "")];
  if (value && typeof value === "object") return Object.values(value).flatMap(targets);
  return [];
}

describe("manifests", () => {
  test("deno.json, package.json and the CLI have the same version, and the manifests the same export keys", () => {
    assert.equal(denoJson.version, pkg.version);
    assert.equal(VERSION, pkg.version, "cli/_version.ts");
    const denoKeys = typeof denoJson.exports === "string"
      ? ["."]
      : Object.keys(denoJson.exports).filter((k) => !JSR_ONLY_EXPORTS.includes(k)).sort();
    assert.deepEqual(Object.keys(pkg.exports).sort(), denoKeys);
    assert.ok(denoKeys.includes("."));
  });

  test("package.json says where the project lives and builds dist/ when packed", () => {
    assert.match(pkg.repository?.url ?? "", /^git\+https:\/\/github\.com\/[\w-]+\/[\w-]+\.git$/);
    assert.match(pkg.homepage ?? "", /^https:\/\/github\.com\//);
    assert.match(pkg.bugs?.url ?? "", /^https:\/\/github\.com\/.*\/issues$/);
    assert.ok((pkg.keywords ?? []).includes("postgres"));
    assert.match(pkg.scripts.prepack ?? "", /\bbuild\b/);
  });

  test("schema.sql is exactly schemaSql() for the default table", () => {
    assert.equal(readFileSync(join(ROOT, "schema.sql"), "utf8"), schemaSql());
  });
});

describe("schema.sql against PostgreSQL", { skip: dbSkip }, () => {
  const schema = randomSchema("pkg_schema");
  let client: pg.Client;

  before(async () => {
    // Unqualified names in schema.sql land in this run's own schema.
    client = new pg.Client({ connectionString: databaseUrl() });
    client.on("error", (): void => {});
    await client.connect();
    await client.query(`create schema "${schema}"`);
    await client.query(`set search_path to "${schema}"`);
  });
  after(async () => {
    try {
      await client?.query(`drop schema if exists "${schema}" cascade`);
    } finally {
      await client?.end();
    }
  });

  test("running schema.sql twice succeeds and creates the table and its expiry index", async () => {
    const text = readFileSync(join(ROOT, "schema.sql"), "utf8");
    await client.query(text);
    await client.query(text);
    const { rows: columns } = await client.query(
      `select column_name, data_type from information_schema.columns where table_schema = $1 and table_name = 'session' order by ordinal_position`,
      [schema],
    );
    assert.deepEqual(columns, [
      { column_name: "session_key", data_type: "character" },
      { column_name: "session_data", data_type: "bytea" },
      { column_name: "session_expiry", data_type: "timestamp without time zone" },
      { column_name: "session_user_id", data_type: "text" },
      { column_name: "session_label", data_type: "text" },
    ]);
    const { rows: indexes } = await client.query(`select indexname from pg_indexes where schemaname = $1 order by 1`, [
      schema,
    ]);
    assert.deepEqual(indexes.map((r: { indexname: string }) => r.indexname), [
      "session_expiry_idx",
      "session_key",
      "session_user_idx",
    ]);
  });
});

describe("npm package", () => {
  let temp: string;
  let tarball: string;
  let entries: string[];
  let consumer: string;

  before(async () => {
    temp = mkdtempSync(join(tmpdir(), "pgsession-pack-"));
    const stage = join(temp, "stage");
    // A fresh clone's files: tracked plus new unignored ones (this run may test uncommitted work).
    const files = (await sh("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)).split("\0")
      .filter(Boolean);
    for (const file of files) {
      if (file === "node_modules" || !existsSync(join(ROOT, file))) continue; // the linked toolchain; deleted files
      mkdirSync(dirname(join(stage, file)), { recursive: true });
      copyFileSync(join(ROOT, file), join(stage, file));
    }
    assert.ok(!existsSync(join(stage, "dist")), "the copy starts without dist/");
    symlinkSync(join(ROOT, "node_modules"), join(stage, "node_modules"), "dir");
    // Exactly what `npm publish` runs: prepack builds; nothing is built before.
    const packed = JSON.parse(await sh("npm", ["pack", "--json", "--pack-destination", temp], stage, 300_000)) as {
      filename: string;
    }[];
    tarball = join(temp, packed[0]!.filename);
    entries = (await sh("tar", ["-tzf", tarball], temp)).split("\n").filter(Boolean).map((e) =>
      e.replace(/^package\//, "")
    );

    consumer = join(temp, "consumer");
    mkdirSync(consumer);
    writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    // pg and ws are the CLI's optional peer dependencies (ws for dev-proxy): a user of the CLI
    // installs them too.
    await sh(
      "npm",
      ["install", tarball, "pg", "ws", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
      consumer,
      300_000,
    );
  });

  after(() => {
    if (temp) rmSync(temp, { recursive: true, force: true });
  });

  test("the tarball holds dist/mod.js, dist/mod.d.ts, the CLI, schema.sql, README.md and LICENSE, and no tests/ or src/", () => {
    const required = [
      "dist/mod.js",
      "dist/mod.d.ts",
      "bin/pgsession.js",
      "dist/cli/pgsession.js",
      "dist/cli/dev_proxy/server.js",
      "schema.sql",
      "LICENSE",
      "package.json",
    ];
    if (existsSync(join(ROOT, "README.md"))) required.push("README.md");
    else console.warn("!! README.md does not exist yet: the tarball check does not require it");
    for (const path of required) assert.ok(entries.includes(path), `${path} is in the tarball`);
    const leaked = entries.filter((e) =>
      /^(tests|src|cli|demo|examples|bench|scripts|node_modules|dist\/tests)\//.test(e)
    );
    assert.deepEqual(leaked, [], "no sources, tests or tooling in the tarball");
    assert.ok(!entries.some((e) => e.endsWith(".ts") && !e.endsWith(".d.ts")), "no TypeScript sources");
  });

  test("every file the manifest points at is in the tarball", () => {
    for (const path of [...targets(pkg.exports), ...targets(pkg.imports), ...targets(pkg.bin)]) {
      assert.ok(entries.includes(path), `${path} is in the tarball`);
    }
  });

  test("the installed package imports and works in an empty project", async () => {
    const script = `
      import { readFileSync } from "node:fs";
      import { createRequire } from "node:module";
      import * as pkg from "pgsession";
      const { PostgresStore, SessionError, schemaSql } = pkg;
      const sent = [];
      const client = { query: async (text, params) => { sent.push(text); return { rows: [{ n: "3" }] }; } };
      const store = new PostgresStore({ client });
      const count = await store.count();
      const session = store.create();
      const schemaFile = readFileSync(new URL("./node_modules/pgsession/schema.sql", import.meta.url), "utf8");
      console.log(JSON.stringify({
        store: typeof PostgresStore, error: typeof SessionError, count, statements: sent.length,
        token: /^[A-Za-z0-9_-]{43}$/.test(session.id), removed: ["gc", "handleOf", "generateId"].filter((n) => n in pkg),
        schema: schemaSql() === schemaFile,
      }));`;
    const out = await sh(NODE, ["--input-type=module", "-e", script], consumer);
    assert.deepEqual(JSON.parse(out.trim().split("\n").at(-1)!), {
      store: "function",
      error: "function",
      count: 3,
      statements: 1,
      token: true,
      removed: [],
      schema: true,
    });
  });

  test("under Node the installed package hashes and verifies with node:crypto, never crypto.subtle", async () => {
    // Web Crypto made unusable: a request with a validly signed cookie must still be verified and
    // its token's hash sent to the database, which only the node condition's module can do.
    const script = `
      import { createHash, createHmac, randomBytes } from "node:crypto";
      for (const method of ["digest", "sign", "verify", "importKey"]) {
        Object.defineProperty(crypto.subtle, method, { value: () => { throw new Error("crypto.subtle." + method); } });
      }
      const { withSession } = await import("pgsession");
      const secret = "s".repeat(32);
      const token = randomBytes(32).toString("base64url");
      const params = [];
      const client = { query: async (text, values) => { params.push(...(values ?? [])); return { rows: [] }; } };
      const handler = withSession(async (request, session) => new Response(String(await session.get("n") ?? 0)), {
        store: { client }, secrets: [secret], cookie: { name: "sid" },
      });
      const cookie = "sid=" + token + "." + createHmac("sha256", secret).update(token).digest("base64url");
      const res = await handler(new Request("http://localhost/", { headers: { cookie } }));
      const key = createHash("sha256").update(token).digest("hex");
      console.log(JSON.stringify({ status: res.status, body: await res.text(), keySent: params.includes(key) }));`;
    const out = await sh(NODE, ["--input-type=module", "-e", script], consumer);
    assert.deepEqual(JSON.parse(out.trim().split("\n").at(-1)!), { status: 200, body: "0", keySent: true });
  });

  test("every entry reaches the digests through #crypto; a Workers bundle gets Web Crypto, a Node one node:crypto", async () => {
    const dist = join(consumer, "node_modules/pgsession/dist");
    const built = (await sh("find", [dist, "-name", "*.js"], consumer)).split("\n").filter(Boolean);
    const relative = built.filter((file) =>
      /from\s*["'][./]+(src\/)?_crypto(_node)?\.js["']/.test(readFileSync(file, "utf8"))
    );
    assert.deepEqual(relative, [], "no built module imports a digest module by path, around the condition");
    const esbuild = await import("esbuild");
    const bundle = async (options: Record<string, unknown>): Promise<string> => {
      const result = await esbuild.build({
        stdin: {
          contents: `export { createSessions, withSession } from "pgsession";
            export { sessionMiddleware } from "pgsession/hono";
            export { sessionMiddleware as express } from "pgsession/express";`,
          resolveDir: consumer,
        },
        bundle: true,
        write: false,
        format: "esm",
        logLevel: "silent",
        external: ["hono", "pg", "react-router"],
        ...options,
      });
      return result.outputFiles[0]!.text;
    };
    const worker = await bundle({ platform: "neutral", conditions: ["workerd", "worker", "browser"] });
    assert.ok(worker.includes("crypto.subtle.digest"), "Workers: Web Crypto");
    assert.ok(!worker.includes("node:crypto"), "Workers: no node:crypto");
    const edge = await bundle({ platform: "neutral", conditions: ["edge-light", "node"] });
    assert.ok(!edge.includes("node:crypto"), "Vercel Edge: no node:crypto, even beside a node condition");
    const nodeBundle = await bundle({ platform: "node" });
    assert.ok(nodeBundle.includes("node:crypto") && !nodeBundle.includes("crypto.subtle.digest"), "Node: node:crypto");
  });

  test("the installed package's types resolve for a TypeScript consumer", async () => {
    writeFileSync(
      join(consumer, "check.ts"),
      `import { PostgresStore, type QueryClient, type SaveResult } from "pgsession";
const client: QueryClient = { query: async () => ({ rows: [] }) };
const store: PostgresStore = new PostgresStore({ client, ttl: 3600 });
const result: Promise<SaveResult> = store.save(store.create());
void result;
// @ts-expect-error a store needs a connection
new PostgresStore({ ttl: 3600 });
`,
    );
    writeFileSync(
      join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          lib: ["ES2022", "DOM"],
          types: [],
          skipLibCheck: false,
        },
        files: ["check.ts"],
      }),
    );
    await sh(NODE, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", consumer], consumer);
  });

  test("npx pgsession prints its help and version in the empty project", async () => {
    const help = await sh("npx", ["--no-install", "pgsession", "--help"], consumer);
    for (const word of ["migrate", "gc", "stats", "dev-proxy", "--version"]) {
      assert.ok(help.includes(word), `help mentions ${word}`);
    }
    assert.equal(await sh("npx", ["--no-install", "pgsession", "--version"], consumer), `${pkg.version}\n`);
  });

  test("pgsession dev-proxy from the installed package answers Neon's /sql requests", async () => {
    // The bin npx would run, started directly so that stopping it stops the proxy itself.
    const child = spawn(join(consumer, "node_modules/.bin/pgsession"), [
      "dev-proxy",
      "--database",
      databaseUrl(),
      "--port",
      "0",
    ], { cwd: consumer, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const closed = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const endpoint = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no banner in time: ${output}`)), 30_000);
        const onData = (chunk: Buffer): void => {
          output += String(chunk);
          const match = /^ {2}DATABASE_HTTP_ENDPOINT=(\S+)$/m.exec(output);
          if (!match) return;
          clearTimeout(timer);
          resolve(match[1]!);
        };
        child.stdout.on("data", onData);
        child.stderr.on("data", onData);
        void closed.then(() => reject(new Error(`dev-proxy exited: ${output}`)));
      });
      const res = await fetch(endpoint, {
        method: "POST",
        headers: { "Neon-Connection-String": databaseUrl(), "Neon-Raw-Text-Output": "true", "Neon-Array-Mode": "true" },
        body: JSON.stringify({ query: "select $1::int + 1 as n", params: ["41"] }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual((await res.json() as { rows: unknown[] }).rows, [["42"]]);
    } catch (error) {
      throw Object.assign(error as Error, { message: `${(error as Error).message}\noutput: ${output}` });
    } finally {
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      assert.equal(await closed, 0, output);
      clearTimeout(timer);
    }
    assert.match(output, /^POST \/sql 200 1 statement /m);
  });

  test("npx pgsession migrate creates the table from the installed package", { skip: dbSkip }, async () => {
    const schema = randomSchema("pkg_cli");
    const table = `${schema}.session`;
    const admin = new pg.Client({ connectionString: databaseUrl() });
    admin.on("error", (): void => {});
    await admin.connect();
    try {
      const out = await sh(
        "npx",
        ["--no-install", "pgsession", "migrate", "--url", databaseUrl(), "--table", table],
        consumer,
      );
      assert.match(out, /^Created table /m);
      const { rows } = await admin.query("select to_regclass($1) is not null as made", [table]);
      assert.deepEqual(rows, [{ made: true }]);
    } finally {
      await admin.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
      await admin.end();
    }
  });
});
