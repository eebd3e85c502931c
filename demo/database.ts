// Where the demo keeps its sessions, chosen from the environment:
//
// - DATABASE_URL unset: an embedded PostgreSQL (PGlite, PostgreSQL compiled to WebAssembly) in a
//   local folder (DEMO_DATA_DIR, default .data/demo, git-ignored). Nothing to install or run. This
//   database belongs to the demo, so the demo creates and migrates its table itself.
// - DATABASE_URL of a Neon database (host *.neon.tech): Neon's HTTP transport, `neon(url)`,
//   exactly as on Workers or Vercel Edge. It needs Neon's HTTP endpoint, which a plain PostgreSQL
//   does not have.
// - any other DATABASE_URL (a local or hosted plain PostgreSQL): node-postgres' `pg.Pool`, which
//   PostgresStore takes as `{ client }` like any client with `query(text, params)`.
//
// A database named by DATABASE_URL is yours, not the demo's: the demo never changes its schema. It
// checks that the session table has every column it uses and otherwise stops with one line saying
// to run `npx pgsession migrate`, which is how an application's deploy step creates the table too.
import { mkdir } from "node:fs/promises";
import { neon } from "@neondatabase/serverless";
import { PostgresStore, schemaSql } from "../mod.ts";
import type { DemoData } from "./app.ts";
import { StartupError } from "./startup.ts";

export interface DemoDatabase {
  store: PostgresStore<DemoData>;
  /** For the startup line and the page footer. */
  description: string;
  close(): Promise<void>;
}

/** Every column the demo uses, the user columns of "Your sessions" included. */
const CHECK_SQL =
  `SELECT session_key, session_data, session_expiry, session_user_id, session_label FROM "session" LIMIT 0`;

/**
 * Opens the database the environment names and makes sure the session table is usable.
 *
 * @param env The environment: `DATABASE_URL`, `DEMO_DATA_DIR`.
 * @param log Where a dropped pool connection is reported.
 * @throws {StartupError} With a one-line message: the table is missing or lacks columns, or the
 *   database cannot be reached.
 */
export async function openDatabase(
  env: Record<string, string | undefined>,
  log: (line: string) => void = console.error,
): Promise<DemoDatabase> {
  const url = env.DATABASE_URL;
  if (!url) {
    const dir = env.DEMO_DATA_DIR || ".data/demo";
    await mkdir(dir, { recursive: true });
    const { PGlite } = await import("@electric-sql/pglite");
    const db = await PGlite.create(dir);
    // Idempotent: creates the table, or adds what a newer version needs to the one there.
    await db.exec(schemaSql());
    return {
      store: new PostgresStore<DemoData>({ client: db }),
      description: `embedded PostgreSQL (PGlite) in ${dir}`,
      close: () => db.close(),
    };
  }
  const host = hostOf(url);
  if (host.endsWith(".neon.tech")) {
    const sql = neon(url);
    await check((text) => sql.query(text), host);
    return {
      store: new PostgresStore<DemoData>({ sql }),
      description: `Neon at ${host} (HTTP transport)`,
      close: async () => {},
    };
  }
  const { default: pg } = await import("pg");
  const pool = new pg.Pool({ connectionString: url, max: 5 });
  // An idle connection the server drops must not crash the demo (an unhandled 'error' event):
  // the next request that needs the database gets an error page instead, and it is logged there.
  pool.on(
    "error",
    (error: Error & { code?: string }) =>
      log(`demo: idle database connection lost: ${error.code ?? "error"}: ${error.message}`),
  );
  try {
    await check((text) => pool.query(text), host);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return {
    store: new PostgresStore<DemoData>({ client: pool }),
    description: `PostgreSQL at ${host} (node-postgres)`,
    close: () => pool.end(),
  };
}

/** One statement that fails unless the table has all the demo's columns. */
async function check(query: (text: string) => Promise<unknown>, host: string): Promise<void> {
  try {
    await query(CHECK_SQL);
  } catch (error) {
    throw explain(error, host);
  }
}

function explain(error: unknown, host: string): StartupError {
  // Node's happy eyeballs wrap one error per address (localhost: ::1 and 127.0.0.1).
  const driver = error as { code?: string; message?: string; errors?: { code?: string; message?: string }[] };
  const code = driver.code ?? driver.errors?.[0]?.code;
  const reason = (driver.message || driver.errors?.[0]?.message || String(error)).split("\n")[0];
  switch (code) {
    case "42P01": // undefined_table
      return new StartupError(
        `The database in DATABASE_URL (${host}) has no "session" table; create it with \`npx pgsession migrate\` (it reads the same DATABASE_URL), then start the demo again`,
        { cause: error },
      );
    case "42703": // undefined_column
      return new StartupError(
        `The "session" table in DATABASE_URL (${host}) lacks a column the demo uses (${reason}); add it with \`npx pgsession migrate\`, which keeps every session`,
        { cause: error },
      );
    case "ECONNREFUSED":
      return new StartupError(
        `Cannot connect to DATABASE_URL (${host}): connection refused; is PostgreSQL running there?`,
        { cause: error },
      );
  }
  return new StartupError(`Cannot use DATABASE_URL (${host}): ${reason}`, { cause: error });
}

/** The host and port only: the startup line must not print a password. */
function hostOf(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.port ? `${parsed.hostname}:${parsed.port}` : parsed.hostname;
  } catch {
    throw new StartupError("Cannot use DATABASE_URL: it is not a URL (expected postgres://user:password@host/db)");
  }
}
