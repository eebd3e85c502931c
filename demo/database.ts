// Where the demo keeps its sessions, chosen from the environment:
//
// - DATABASE_URL unset: an embedded PostgreSQL (PGlite, PostgreSQL compiled to WebAssembly) in a
//   local folder (DEMO_DATA_DIR, default .data/demo, git-ignored). Nothing to install or run.
// - DATABASE_URL of a Neon database (host *.neon.tech): Neon's HTTP transport, `neon(url)`,
//   exactly as on Workers or Vercel Edge. It needs Neon's HTTP endpoint, which a plain PostgreSQL
//   does not have.
// - any other DATABASE_URL (a local or hosted plain PostgreSQL): node-postgres' `pg.Pool`, which
//   PostgresStore takes as `{ client }` like any client with `query(text, params)`.
//
// In every case the session table is created if missing (schemaSql() is idempotent).
import { mkdir } from "node:fs/promises";
import { neon } from "@neondatabase/serverless";
import { PostgresStore, schemaSql } from "../mod.ts";
import type { DemoData } from "./app.ts";

export interface DemoDatabase {
  store: PostgresStore<DemoData>;
  /** For the startup line and the page footer. */
  description: string;
  close(): Promise<void>;
}

/** The schema's statements one by one: Neon's HTTP transport runs one statement per query. */
function statements(): string[] {
  return schemaSql().split(";").map((s) => s.trim()).filter(Boolean);
}

/** Opens the database the environment names and makes sure the session table exists. */
export async function openDatabase(env: Record<string, string | undefined>): Promise<DemoDatabase> {
  const url = env.DATABASE_URL;
  if (!url) {
    const dir = env.DEMO_DATA_DIR || ".data/demo";
    await mkdir(dir, { recursive: true });
    const { PGlite } = await import("@electric-sql/pglite");
    const db = await PGlite.create(dir);
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
    for (const statement of statements()) await sql.query(statement);
    return {
      store: new PostgresStore<DemoData>({ sql }),
      description: `Neon at ${host} (HTTP transport)`,
      close: async () => {},
    };
  }
  const { default: pg } = await import("pg");
  const pool = new pg.Pool({ connectionString: url, max: 5 });
  try {
    await pool.query(schemaSql());
  } catch (error) {
    await pool.end();
    throw new Error(`Cannot prepare the session table in DATABASE_URL (${host}): ${(error as Error).message}`, { cause: error });
  }
  return {
    store: new PostgresStore<DemoData>({ client: pool }),
    description: `PostgreSQL at ${host} (node-postgres)`,
    close: () => pool.end(),
  };
}

/** The host and port only: the startup line must not print a password. */
function hostOf(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.port ? `${parsed.hostname}:${parsed.port}` : parsed.hostname;
  } catch {
    throw new TypeError("Cannot use DATABASE_URL: it is not a URL (expected postgres://user:password@host/db)");
  }
}
