// The `pgsession` command line against the local PostgreSQL: what it prints, its exit codes, and
// what it does to the table. Runs under Node and Deno; the CLI runs as a child process on the same
// runtime (one test uses the other runtime), with the database TimeZone away from UTC.
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { Client, neon } from "@neondatabase/serverless";
import { main } from "../cli/_main.ts";
import { databaseUrl, dbSkip, randomSchema, withTimeZone } from "./_db.ts";
import { configureNeon } from "./support/harness.ts";

const DATABASE_URL: string = withTimeZone(databaseUrl());
const SCHEMA: string = randomSchema("cli_test");
const REPO_ROOT: string = fileURLToPath(new URL("../", import.meta.url));
const CLI: string = "cli/pgsession.ts";
const NOW: string = "(now() AT TIME ZONE 'UTC')";

let pool: pg.Pool;
let tables = 0;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI as a child process and collects its output: on the runtime running the tests
 * unless `runtime` says otherwise.
 */
function run(
  args: string[],
  options: {
    env?: Record<string, string | undefined>;
    runtime?: "node" | "deno";
    started?: (child: ChildProcess) => void;
    /** Node only: options before the script, e.g. another `--import`. */
    nodeOptions?: string[];
  } = {},
): Promise<Run> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, DATABASE_URL, NO_COLOR: "1", ...options.env })) {
    if (v !== undefined) env[k] = v;
  }
  const runtime = options.runtime ?? ("Deno" in globalThis ? "deno" : "node");
  const [command, prefix] = runtime === "deno"
    ? ["Deno" in globalThis ? process.execPath : `${REPO_ROOT}node_modules/.bin/deno`, ["run", "-A", "--quiet", CLI]]
    // Under Deno, process.execPath is deno itself: Node comes from PATH.
    : ["Deno" in globalThis ? "node" : process.execPath, ["--import", "tsx", ...options.nodeOptions ?? [], CLI]];
  return new Promise((resolve, reject): void => {
    const child = spawn(command, [...prefix, ...args], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string): void => void (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string): void => void (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code: number | null): void => resolve({ code, stdout, stderr }));
    options.started?.(child);
  });
}

/**
 * Runs the CLI's `main()` in this process, where a child process would only add start-up time:
 * the many variants of one failure. Each kind of failure is also run as a real process.
 */
async function runHere(args: string[], env: Record<string, string | undefined> = { DATABASE_URL }): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await main(
    args,
    env,
    { write: (s: string): boolean => Boolean(stdout += s) },
    { write: (s: string): boolean => Boolean(stderr += s) },
  );
  return { code, stdout, stderr };
}

/** An expected failure: the exit code, and one line on stderr without a stack trace. */
function assertFailure(result: Run, code: number, message: RegExp): void {
  assert.equal(result.code, code, `exit code; stderr: ${result.stderr}`);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, message);
  assert.match(result.stderr, /^pgsession: Cannot [^\n]*\n$/, "one line on stderr");
  assert.doesNotMatch(result.stderr, /\n\s+at /);
}

function newTable(): string {
  return `${SCHEMA}.session${++tables}`;
}

async function seed(table: string, live: number, expired: number): Promise<void> {
  await pool.query(
    `INSERT INTO ${table} (session_key, session_data, session_expiry)
     SELECT encode(sha256(convert_to('k' || i, 'UTF8')), 'hex'), NULL,
            CASE WHEN i <= $1 THEN ${NOW} + interval '1 hour' ELSE ${NOW} - i * interval '1 second' END
     FROM generate_series(1, $1::int + $2::int) AS i`,
    [live, expired],
  );
}

async function counts(table: string): Promise<{ live: number; expired: number }> {
  const { rows } = await pool.query(
    `SELECT count(*) FILTER (WHERE session_expiry > ${NOW})::int AS live,
            count(*) FILTER (WHERE session_expiry <= ${NOW})::int AS expired FROM ${table}`,
  );
  return rows[0];
}

/** A migrated, seeded table. */
async function seededTable(live: number, expired: number): Promise<string> {
  const table = newTable();
  const migrated = await run(["migrate", "--table", table]);
  assert.equal(migrated.code, 0, migrated.stderr);
  await seed(table, live, expired);
  return table;
}

describe("pgsession CLI", { skip: dbSkip }, (): void => {
  before(async (): Promise<void> => {
    pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    await pool.query(`CREATE SCHEMA ${SCHEMA}`);
  });

  after(async (): Promise<void> => {
    try {
      await pool.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    } finally {
      await pool.end();
    }
  });

  test("--help lists the commands, options and exit codes", async (): Promise<void> => {
    const result = await run(["--help"]);
    assert.equal(result.code, 0);
    assert.equal(result.stderr, "");
    for (
      const word of [
        "migrate",
        "gc",
        "stats",
        "dev-proxy",
        "--url",
        "--table",
        "--batch-size",
        "--max-duration",
        "--connect-timeout",
        "--version",
        "Exit codes",
        "DATABASE_URL",
      ]
    ) {
      assert.ok(result.stdout.includes(word), `help mentions ${word}`);
    }
    assert.equal((await runHere(["gc", "-h"])).stdout, result.stdout);
  });

  test("--version prints the package version and nothing else", async (): Promise<void> => {
    const { version } = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, "utf8")) as { version: string };
    const result = await run(["--version"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${version}\n`);
    assert.equal(result.stderr, "");
    assert.equal((await runHere(["-v"], {})).stdout, `${version}\n`);
  });

  test("migrate creates the table and index, and a second run changes nothing", async (): Promise<void> => {
    const table = newTable();
    const first = await run(["migrate", "--table", table]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^Created table "cli_test_\w+"\."session\d+"$/m);
    assert.match(first.stdout, /^Created index "cli_test_\w+"\."session\d+_expiry_idx"$/m);
    const { rows } = await pool.query(
      `SELECT column_name, data_type FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
      table.split("."),
    );
    assert.deepEqual(rows, [
      { column_name: "session_key", data_type: "character" },
      { column_name: "session_data", data_type: "bytea" },
      { column_name: "session_expiry", data_type: "timestamp without time zone" },
      { column_name: "session_user_id", data_type: "text" },
      { column_name: "session_label", data_type: "text" },
    ]);
    await seed(table, 1, 1);
    const second = await run(["migrate", "--table", table]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^Schema "cli_test_\w+" already exists$/m);
    assert.match(second.stdout, /^Table "cli_test_\w+"\."session\d+" already exists$/m);
    assert.match(second.stdout, /^Nothing to do: the schema is up to date, nothing was added$/m);
    assert.deepEqual(await counts(table), { live: 1, expired: 1 });
  });

  test("migrate creates a missing schema for a schema-qualified table", async (): Promise<void> => {
    const schema = `${SCHEMA}_new`;
    try {
      const result = await run(["migrate", "--table", `${schema}.session`]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^Created schema "${schema}"$`, "m"));
      assert.deepEqual(await counts(`${schema}.session`), { live: 0, expired: 0 });
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
  });

  test("stats counts live and expired sessions and shows sizes", async (): Promise<void> => {
    const table = await seededTable(30, 70);
    const result = await run(["stats", "--table", table]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    assert.match(result.stdout, /^ {2}live sessions +30$/m);
    assert.match(result.stdout, /^ {2}expired sessions +70$/m);
    assert.match(result.stdout, /^ {2}table size +\d+(\.\d)? (bytes|kB|MB)$/m);
    assert.match(result.stdout, /^ {2}index size +\d+(\.\d)? (bytes|kB|MB)$/m);
  });

  test("gc deletes the expired rows, prints one quiet line off a terminal and exits 0", async (): Promise<void> => {
    const table = await seededTable(30, 2500);
    const result = await run(["gc", "--table", table, "--batch-size", "1000"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    assert.match(
      result.stdout,
      /^pgsession gc: deleted=2500 batches=3 seconds=[\d.]+ rate=\d+ longest_batch_ms=\d+ done=true\n$/,
    );
    assert.deepEqual(await counts(table), { live: 30, expired: 0 });
  });

  test("gc exits 3 when its time budget runs out with rows left", async (): Promise<void> => {
    const table = await seededTable(0, 5000);
    const result = await run(["gc", "--table", table, "--batch-size", "1", "--max-duration", "0.05"]);
    assert.equal(result.code, 3, result.stderr);
    const deleted = Number(/deleted=(\d+)/.exec(result.stdout)?.[1]);
    assert.ok(deleted > 0 && deleted < 5000, result.stdout);
    assert.match(result.stdout, / done=false stopped=budget\n$/);
    assert.deepEqual(await counts(table), { live: 0, expired: 5000 - deleted });

    const none = await run(["gc", "--table", table, "--max-duration", "0"]);
    assert.equal(none.code, 3);
    assert.match(none.stdout, /deleted=0 batches=0 .* done=false stopped=budget/);
  });

  test("Ctrl-C stops gc after its batch in flight, exit 130", async (): Promise<void> => {
    const table = await seededTable(0, 20_000);
    const result = await run(["gc", "--table", table, "--batch-size", "1", "--max-duration", "none"], {
      started: (child: ChildProcess): void => {
        // Interrupt once collection is under way, so the handler is surely installed.
        const poll = async (): Promise<void> => {
          while ((await counts(table)).expired === 20_000) await new Promise((r) => setTimeout(r, 20));
          child.kill("SIGINT");
        };
        void poll();
      },
    });
    // Deno's child_process reports any child it sent a signal to as code null, even one that then
    // exited by itself; the exit code shows under Node (Deno's, by hand: 130 too).
    if (!("Deno" in globalThis)) assert.equal(result.code, 130, result.stderr);
    assert.equal(result.stderr, "");
    const deleted = Number(/deleted=(\d+)/.exec(result.stdout)?.[1]);
    assert.match(result.stdout, / done=false stopped=interrupted\n$/);
    assert.deepEqual(await counts(table), { live: 0, expired: 20_000 - deleted });
  });

  test("gc on a terminal ends with a summary", async (): Promise<void> => {
    const table = await seededTable(5, 120);
    let stdout = "";
    let stderr = "";
    const code = await main(
      ["gc", "--table", table, "--batch-size", "50", "--url", DATABASE_URL],
      {},
      { isTTY: true, write: (s: string): boolean => Boolean(stdout += s) },
      { write: (s: string): boolean => Boolean(stderr += s) },
    );
    assert.equal(code, 0, stderr);
    assert.match(
      stdout,
      /Deleted 120 expired sessions in 3 batches, [\d.]+ s \([\d,]+ rows\/s, longest batch \d+ ms\): no expired sessions left\n$/,
    );
    assert.deepEqual(await counts(table), { live: 5, expired: 0 });
  });

  test("a missing table says to run migrate", async (): Promise<void> => {
    const table = `${SCHEMA}.nothing_here`;
    const [gc, stats, noSchema] = [
      await run(["gc", "--table", table]),
      await runHere(["stats", "--table", table]),
      await runHere(["stats", "--table", "no_such_schema_x.session"]),
    ];
    const hint = new RegExp(`does not exist; create it with \`pgsession migrate --table ${table}\``);
    assertFailure(gc, 1, hint);
    assertFailure(stats, 1, hint);
    assertFailure(noSchema, 1, /pgsession migrate/);
  });

  test("a bad or missing URL is a usage error that never shows the password", async (): Promise<void> => {
    const [notUrl, http, mysql, none] = [
      await run(["stats", "--url", "not a url"]),
      await runHere(["stats", "--url", "https://user:hunter2@example.com/db"]),
      await runHere(["stats"], { DATABASE_URL: "mysql://x/y" }),
      await runHere(["stats"], {}),
    ];
    assertFailure(notUrl, 2, /--url is not a postgres:/);
    assertFailure(http, 2, /https:\/\/user:\*\*\*@example\.com\/db/);
    assert.doesNotMatch(http.stderr, /hunter2/);
    assertFailure(mysql, 2, /DATABASE_URL is not a postgres:/);
    assertFailure(none, 2, /no database URL; set DATABASE_URL or pass --url/);
  });

  test("an unreachable database is a one-line error, exit 1", async (): Promise<void> => {
    const [refused, noDb] = [
      await run(["gc", "--url", "postgres://postgres:secret@127.0.0.1:1/test"]),
      await runHere(["stats", "--url", "postgres://postgres@127.0.0.1:5432/no_such_db_x"]),
    ];
    assertFailure(refused, 1, /^pgsession: Cannot connect to 127\.0\.0\.1:1: connection refused/);
    assert.doesNotMatch(refused.stderr, /secret/);
    assertFailure(noDb, 1, /database "no_such_db_x" does not exist/);
  });

  test("a server that never answers: the error says how long it waited", async (): Promise<void> => {
    // Accepts the TCP connection and says nothing, like a firewalled or stopped-but-bound server.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket: net.Socket): void => {
      sockets.add(socket);
      socket.on("error", (): void => {});
    });
    await new Promise<void>((resolve): void => void silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const result = await run([
        "stats",
        "--url",
        `postgres://postgres@127.0.0.1:${port}/test`,
        "--connect-timeout",
        "0.5",
      ]);
      assertFailure(
        result,
        1,
        new RegExp(`^pgsession: Cannot connect to 127\\.0\\.0\\.1:${port}: no answer within 0\\.5 s`),
      );
      assert.match(result.stderr, /--connect-timeout/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve): void => void silent.close((): void => resolve()));
    }
  });

  test("dev-proxy serves Neon's driver over HTTP and WebSocket on loopback and logs each request", async (): Promise<void> => {
    let listening: (url: string) => void = (): void => {};
    const url = new Promise<string>((resolve): void => void (listening = resolve));
    let output = "";
    let proxy: ChildProcess | undefined;
    const stopped = run(["dev-proxy", "--database", DATABASE_URL, "--port", "0"], {
      started: (child: ChildProcess): void => {
        proxy = child;
        child.stdout?.on("data", (chunk: Buffer | string): void => {
          output += String(chunk);
          const match = /^Listening on (http:\/\/127\.0\.0\.1:\d+) \(loopback only/m.exec(output);
          if (match) listening(match[1]!);
        });
      },
    });
    try {
      const base = await Promise.race([url, stopped.then((r): never => assert.fail(`dev-proxy exited: ${r.stderr}`))]);
      assert.match(output, new RegExp(`^ {2}DATABASE_HTTP_ENDPOINT=${base}/sql$`, "m"), "prints the setting to use");
      // Global driver settings; the other tests in this file use pg only.
      configureNeon(Number(new URL(base).port));
      const sql = neon(DATABASE_URL);
      assert.deepEqual(await sql`select 1 as one`, [{ one: 1 }]);
      const [a, b] = await sql.transaction([sql`select 2 as two`, sql`select current_setting('TimeZone') as tz`]);
      assert.deepEqual([a, b], [[{ two: 2 }], [{ tz: "Pacific/Auckland" }]]);
      const client = new Client(DATABASE_URL);
      await client.connect();
      try {
        assert.equal((await client.query("select repeat('x', 100000) as big")).rows[0].big.length, 100_000);
      } finally {
        await client.end();
      }
      // A connection string naming another machine is refused, whatever the caller sends.
      const refused = await fetch(`${base}/sql`, {
        method: "POST",
        headers: { "Neon-Connection-String": "postgres://u:pw@db.example.com/app" },
        body: JSON.stringify({ query: "select 1", params: [] }),
      });
      assert.equal(refused.status, 400);
      assert.match((await refused.json()).message, /only loopback databases/);
    } finally {
      proxy?.kill("SIGINT");
    }
    const result = await stopped;
    assert.equal(result.stderr, "");
    assert.match(result.stdout, /^POST \/sql 200 1 statement \d+ ms [\w.:]+\/\w+$/m);
    assert.match(result.stdout, /^POST \/sql 200 2 statements \(transaction\) \d+ ms/m);
    assert.match(result.stdout, /^POST \/sql 400 0 statements .*only loopback databases/m);
    assert.match(
      result.stdout,
      /^Stopped after 3 HTTP requests \(3 statements\) and 1 WebSocket connections$/m,
    );
  });

  test("bad command lines exit 2 before connecting", async (): Promise<void> => {
    const unreachable = { DATABASE_URL: "postgres://127.0.0.1:1/x" };
    const cases: [string[], RegExp][] = [
      [[], /no command given/],
      [["vacuum"], /unknown command: vacuum; write pgsession <command> \[options\], the command one of migrate, /],
      [["migrat"], /unknown command: migrat; did you mean migrate\?/],
      [["Stats"], /did you mean stats\?/],
      [["dev_proxy", "--port", "0"], /did you mean dev-proxy\?/],
      [["--url", DATABASE_URL, "migrate"], /--url before the command: write pgsession <command> \[options\]/],
      [["gc", "--frobnicate"], /unknown option: --frobnicate \(see/],
      [["gc", "--batch-szie", "5"], /unknown option: --batch-szie; did you mean --batch-size\?/],
      [["gc", "-x"], /unknown option: -x/],
      [["gc", "--batch-size", "0"], /--batch-size 0/],
      [["gc", "--max-duration", "soon"], /--max-duration soon/],
      // Node's parseArgs says how to pass a value that starts with a dash.
      [["gc", "--max-duration", "-1"], /'--max-duration' argument is ambiguous. .*'--max-duration=-XYZ'$/m],
      [["gc", "--max-duration=-0.5"], /--max-duration -0.5: out of range/],
      [["gc", "--max-duration"], /'--max-duration <value>' argument missing/],
      [["gc", "--help=yes"], /'-h, --help' does not take an argument/],
      [
        ["dev-proxy", "--table", "x"],
        /--table with dev-proxy: it is an option of migrate, gc, stats, sessions and revoke/,
      ],
      [["stats", "--connect-timeout", "0"], /--connect-timeout 0: out of range/],
      [["stats", "--batch-size", "5"], /option of gc/],
      [["stats", "--port", "5"], /option of dev-proxy/],
      [["dev-proxy", "--port", "70000"], /--port 70000: expected a port number/],
      [
        ["dev-proxy", "--database", "postgres://u:pw@db.example.com/app"],
        /Cannot relay to db\.example\.com: dev-proxy serves only a PostgreSQL on this machine \(--database is postgres:\/\/u:\*\*\*@/,
      ],
      [["stats", "--table", "a;b"], /table name "a;b"/],
    ];
    assertFailure(await run(["vacuum"], { env: unreachable }), 2, /unknown command: vacuum/);
    for (const [args, message] of cases) assertFailure(await runHere(args, unreachable), 2, message);
  });

  test("migrate (and stats) on connect-pg-simple's session table name it, suggest --table and change nothing", async (): Promise<void> => {
    const schema = `${SCHEMA}_express`;
    // The table exactly as connect-pg-simple's own table.sql makes it.
    const client = await pool.connect();
    try {
      await client.query(`CREATE SCHEMA ${schema}; SET search_path TO ${schema}`);
      await client.query(readFileSync(`${REPO_ROOT}node_modules/connect-pg-simple/table.sql`, "utf8"));
    } finally {
      await client.query("RESET search_path");
      client.release();
    }
    const shape = async (): Promise<unknown> =>
      (await pool.query(
        `SELECT (SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns
           WHERE table_schema = $1 AND table_name = 'session') AS columns,
         (SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes WHERE schemaname = $1) AS indexes`,
        [schema],
      )).rows[0];
    try {
      const before = await shape();
      const refused = await run(["migrate", "--table", `${schema}.session`]);
      assertFailure(
        refused,
        2,
        /table "cli_test_\w+_express\.session" is connect-pg-simple's \(sid, sess, expire\), not pgsession's; nothing was changed/,
      );
      assert.match(refused.stderr, /`pgsession migrate --table <another name>`/);
      assert.deepEqual(await shape(), before, "the old table is untouched");
      assertFailure(
        await runHere(["stats", "--table", `${schema}.session`]),
        1,
        /is not a session table \(column "session_expiry" does not exist\); .*`pgsession migrate --table <another name>`/,
      );

      const beside = await runHere(["migrate", "--table", `${schema}.pgsession`]);
      assert.equal(beside.code, 0, beside.stderr);
      assert.match(beside.stdout, /^Created table /m);

      await pool.query(`CREATE TABLE ${schema}.other (id int, note text)`);
      assertFailure(
        await runHere(["migrate", "--table", `${schema}.other`]),
        2,
        /has columns id, note, not pgsession's \(session_key, session_data, session_expiry\)/,
      );
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
  });

  test("without the pg package (or ws for dev-proxy), the message says what to install, exit 2", async (): Promise<void> => {
    // A resolve hook that finds neither package stands in for a project that never installed them.
    const missing = (names: string[]): string[] => {
      const hook = `export async function resolve(specifier, context, next) {
        if (${JSON.stringify(names)}.includes(specifier)) {
          throw Object.assign(new Error("Cannot find package '" + specifier + "'"), { code: "ERR_MODULE_NOT_FOUND" });
        }
        return next(specifier, context);
      }`;
      const register = `import { register } from "node:module"; register(${
        JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)
      });`;
      return ["--import", `data:text/javascript,${encodeURIComponent(register)}`];
    };
    assertFailure(
      await run(["stats"], { nodeOptions: missing(["pg"]), runtime: "node" }),
      2,
      /^pgsession: Cannot connect: the pgsession command needs the pg package \(an optional peer dependency\); install it with `npm install pg`$/m,
    );
    assertFailure(
      await run(["dev-proxy", "--database", DATABASE_URL, "--port", "0"], {
        nodeOptions: missing(["ws"]),
        runtime: "node",
      }),
      2,
      /^pgsession: Cannot start dev-proxy: the pgsession command needs the ws package \(an optional peer dependency\); install it with `npm install ws`$/m,
    );
  });

  test("in a fresh clone, npx pgsession runs the documented commands with no build step", async (): Promise<void> => {
    // A contributor's clone: `git clone` (of the last commit), then `npm ci`, which would install
    // the node_modules this checkout has; they are linked here instead of downloaded. npm ci would
    // run no lifecycle script of ours (checked below), so linking skips nothing. What makes the
    // command work is npx itself, which links the project's own bin in its cache, as for a user;
    // its cache is a new, empty one.
    const { scripts } = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, "utf8")) as {
      scripts: Record<string, string>;
    };
    for (const script of ["preinstall", "install", "postinstall", "prepare"]) {
      assert.equal(scripts[script], undefined, `npm ci would run the ${script} script, which linking skips`);
    }
    const temp = mkdtempSync(join(tmpdir(), "pgsession-clone-"));
    const clone = join(temp, "clone");
    const env = { ...process.env, npm_config_cache: join(temp, "npm-cache"), npm_config_update_notifier: "false" };
    const npx = async (args: string[]): Promise<string> =>
      (await promisify(execFile)("npx", ["--no-install", "pgsession", ...args], { cwd: clone, env })).stdout;
    try {
      await promisify(execFile)("git", ["clone", "--quiet", REPO_ROOT, clone]);
      assert.ok(!existsSync(join(clone, "dist")), "a clone has no build");
      symlinkSync(join(REPO_ROOT, "node_modules"), join(clone, "node_modules"), "dir");
      assert.match(await npx(["--help"]), /^Usage: pgsession <command> \[options\]$/m);
      const table = newTable();
      assert.match(await npx(["migrate", "--url", DATABASE_URL, "--table", table]), /^Created table /m);
      assert.deepEqual(await counts(table), { live: 0, expired: 0 });
      assert.ok(!existsSync(join(clone, "dist")), "nothing was built");
    } finally {
      rmSync(temp, { recursive: true, force: true });
    }
  });

  test("runs the same on the other runtime (Deno from Node, Node from Deno)", async (): Promise<void> => {
    const runtime = "Deno" in globalThis ? "node" : "deno";
    const table = newTable();
    const migrated = await run(["migrate", "--table", table], { runtime });
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /Created table/);
    await seed(table, 2, 3);
    const collected = await run(["gc", "--table", table], { runtime });
    assert.equal(collected.code, 0, collected.stderr);
    assert.match(collected.stdout, /deleted=3 batches=1 .*done=true/);
    assertFailure(await run(["stats", "--url", "postgres://127.0.0.1:1/x"], { runtime }), 1, /connection refused/);
  });
});

// `pgsession sessions`, `pgsession revoke` and the users line of `stats`, on sessions the library
// itself signed in (PostgresStore over its own pool), so the CLI reads what applications write.
const { PostgresStore } = await import("../mod.ts");
const { handleOf } = await import("../src/id.ts");
describe("pgsession CLI: a user's sessions", { skip: dbSkip }, (): void => {
  const schema = randomSchema("cli_users");
  let admin: pg.Pool;
  let store: InstanceType<typeof PostgresStore>;
  let n = 0;

  /** A migrated table in this suite's schema, and a store on it. */
  async function usersTable(): Promise<string> {
    const table = `${schema}.session${++n}`;
    const migrated = await run(["migrate", "--table", table]);
    assert.equal(migrated.code, 0, migrated.stderr);
    store = new PostgresStore({ client: admin, table });
    return table;
  }

  /** A session signed in as `user` through the library: its token. */
  async function signIn(user: string, label?: string): Promise<string> {
    const session = store.create();
    session.regenerate({ user, label });
    await store.save(session);
    return session.id;
  }

  async function liveUsers(table: string): Promise<Record<string, number>> {
    const { rows } = await admin.query(
      `SELECT session_user_id AS user, count(*)::int AS n FROM ${table} WHERE session_expiry > ${NOW} GROUP BY 1 ORDER BY 1`,
    );
    return Object.fromEntries(rows.map((r) => [r.user ?? "(none)", r.n]));
  }

  before(async (): Promise<void> => {
    // The first suite ended its pool; seed() and counts() use the module's, so give them this one.
    admin = pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    await admin.query(`CREATE SCHEMA ${schema}`);
  });

  after(async (): Promise<void> => {
    try {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await admin.end();
    }
  });

  test("--help lists sessions, revoke, --user and --except", async (): Promise<void> => {
    const result = await runHere(["--help"]);
    assert.equal(result.code, 0);
    for (const word of ["sessions", "revoke", "--user ID", "--except HANDLE"]) {
      assert.ok(result.stdout.includes(word), `help mentions ${word}`);
    }
  });

  test("sessions --user lists each live session with handle, label, created, last active and expires", async (): Promise<void> => {
    const table = await usersTable();
    const laptop = await signIn("42", "Firefox on Linux");
    await signIn("42", "Chrome on Android");
    await signIn("42");
    const expired = await signIn("42", "Old phone");
    await admin.query(`UPDATE ${table} SET session_expiry = ${NOW} - interval '1 minute' WHERE session_key = $1`, [
      await handleOf(expired),
    ]);
    await signIn("7", "Someone else's");
    await seed(table, 2, 0); // anonymous sessions

    const result = await run(["sessions", "--user", "42", "--table", table]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    const lines = result.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^3 live sessions of user "42" in "cli_users_\w+"\."session\d+"$/);
    assert.match(lines[1]!, /^HANDLE +LABEL +CREATED +LAST ACTIVE +EXPIRES$/);
    assert.equal(lines.length, 5);
    const time = "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ";
    const row = new RegExp(`^([0-9a-f]{64})  (.+?) +(${time})  (${time})  (${time})$`);
    const parsed = lines.slice(2).map((line) => row.exec(line) ?? assert.fail(`a session line: ${line}`));
    assert.deepEqual(parsed.map((m) => m[2]).sort(), ["-", "Chrome on Android", "Firefox on Linux"]);
    // The handle is the stored hash: it identifies the row, and it is not the cookie.
    const handles = parsed.map((m) => m[1]!);
    assert.ok(handles.includes(await handleOf(laptop)));
    assert.ok(!handles.includes(laptop));
    for (const m of parsed) {
      const [created, lastActive, expires] = [m[3], m[4], m[5]].map((t) => Date.parse(t!.replace(" ", "T")));
      assert.ok(Math.abs(created! - Date.now()) < 120_000, `created ${m[3]} is about now (UTC)`);
      assert.ok(lastActive! >= created! && expires! > lastActive!, m[0]);
    }

    const none = await runHere(["sessions", "--user", "nobody", "--table", table]);
    assert.equal(none.code, 0);
    assert.match(none.stdout, /^No live sessions of user "nobody" in /);
  });

  test("a label with terminal escape sequences is printed harmless", async (): Promise<void> => {
    const table = await usersTable();
    await signIn("mallory", "Evil\x1b]0;owned\x07\x1b[2J browser");
    const result = await runHere(["sessions", "--user", "mallory", "--table", table]);
    assert.equal(result.code, 0, result.stderr);
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(result.stdout), JSON.stringify(result.stdout));
    assert.match(result.stdout, /Evil\\x1b\]0;owned\\x07\\x1b\[2J browser/);
  });

  test("revoke --user signs the user out everywhere and prints how many", async (): Promise<void> => {
    const table = await usersTable();
    const tokens = [await signIn("42"), await signIn("42"), await signIn("42")];
    await signIn("7");
    await seed(table, 1, 0);

    const result = await run(["revoke", "--user", "42", "--table", table]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'Revoked 3 sessions of user "42"\n');
    assert.deepEqual(await liveUsers(table), { "7": 1, "(none)": 1 });
    for (const token of tokens) assert.equal(await store.read(token), null, "a revoked token reads as no session");

    const again = await runHere(["revoke", "--user", "42", "--table", table]);
    assert.equal(again.stdout, 'Revoked 0 sessions of user "42"\n');
  });

  test("revoke --except keeps the one session it names; a handle that is not the user's revokes nothing", async (): Promise<void> => {
    const table = await usersTable();
    const keep = await signIn("42", "the laptop");
    await signIn("42");
    await signIn("42");
    const stranger = await signIn("7");

    const wrong = await runHere(["revoke", "--user", "42", "--except", await handleOf(stranger), "--table", table]);
    // A handle that is none of the user's sessions is the caller's mistake, not the database's.
    assertFailure(wrong, 2, /none of them has handle [0-9a-f]{64}; nothing was revoked/);
    const typo = await run(["revoke", "--user", "42", "--except", "not-a-handle", "--table", table]);
    assertFailure(typo, 2, /nothing was revoked/);
    assert.deepEqual(await liveUsers(table), { "42": 3, "7": 1 });

    const handle = await handleOf(keep);
    const result = await run(["revoke", "--user", "42", "--except", handle, "--table", table]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `Revoked 2 sessions of user "42"; kept ${handle}\n`);
    assert.deepEqual(await liveUsers(table), { "42": 1, "7": 1 });
    assert.equal(await (await store.read(keep))?.user(), "42", "the kept session still works");
  });

  test("stats shows how many live sessions have a user", async (): Promise<void> => {
    const table = await usersTable();
    await signIn("a");
    await signIn("a");
    await signIn("b");
    await seed(table, 4, 2);
    const result = await run(["stats", "--table", table]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ {2}live sessions +7$/m);
    assert.match(result.stdout, /^ {4}with a user +3 live sessions of 2 users$/m);
  });

  test("on a table from before the user columns: stats says to migrate, sessions and revoke fail with the hint, migrate adds the columns", async (): Promise<void> => {
    const table = `${schema}.old_table`;
    await admin.query(
      `CREATE TABLE ${table} (session_key char(64) NOT NULL PRIMARY KEY, session_data bytea, session_expiry timestamp NOT NULL)`,
    );
    await seed(table, 3, 0);

    const before = await runHere(["stats", "--table", table]);
    assert.equal(before.code, 0, before.stderr);
    assert.match(before.stdout, /^ {2}live sessions +3$/m);
    assert.match(before.stdout, /^ {4}with a user +unknown: no user columns yet; run pgsession migrate to add them$/m);
    const hint = new RegExp(`has no user column yet; add it with \`pgsession migrate --table ${table}\``);
    assertFailure(await run(["sessions", "--user", "42", "--table", table]), 1, hint);
    assertFailure(await runHere(["revoke", "--user", "42", "--table", table]), 1, hint);

    const migrated = await run(["migrate", "--table", table]);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(
      migrated.stdout,
      /^Added the user columns session_user_id, session_label to .* \(every session kept\)$/m,
    );
    assert.match(migrated.stdout, /^Created index "cli_users_\w+"\."old_table_user_idx" \(sessions by user\)$/m);
    assert.doesNotMatch(migrated.stdout, /Nothing to do/);
    const again = await runHere(["migrate", "--table", table]);
    assert.match(again.stdout, /^User columns session_user_id, session_label already exist$/m);
    assert.match(again.stdout, /^Index "cli_users_\w+"\."old_table_user_idx" already exists$/m);
    assert.match(again.stdout, /^Nothing to do: the schema is up to date, nothing was added$/m);
    const after = await runHere(["stats", "--table", table]);
    assert.match(after.stdout, /^ {4}with a user +0 live sessions of 0 users$/m);
    assert.deepEqual(await counts(table), { live: 3, expired: 0 }, "nothing lost");
    // A new process: the store remembers a table without the columns for the life of a process.
    const listed = await run(["sessions", "--user", "42", "--table", table]);
    assert.equal(listed.code, 0, listed.stderr);
  });

  test("sessions and revoke need --user; --user and --except belong to them only (exit 2)", async (): Promise<void> => {
    const unreachable = { DATABASE_URL: "postgres://127.0.0.1:1/x" };
    const cases: [string[], RegExp][] = [
      [["sessions"], /sessions: it needs --user ID/],
      [["revoke", "--user", ""], /revoke: it needs --user ID/],
      [["revoke", "--user", "x".repeat(1025)], /--user: it is 1025 characters, over the 1024-character limit/],
      [["sessions", "--user", "42", "--except", "abc"], /--except with sessions: it is an option of revoke/],
      [["revoke", "--user", "42", "--except", ""], /--except with an empty value/],
      [["stats", "--user", "42"], /--user with stats: it is an option of sessions and revoke/],
      [["gc", "--except", "abc"], /--except with gc/],
      [["revoke", "--user"], /'--user <value>' argument missing/],
    ];
    assertFailure(await run(["revoke"], { env: unreachable }), 2, /revoke: it needs --user ID/);
    for (const [args, message] of cases) assertFailure(await runHere(args, unreachable), 2, message);
  });
});
