// Where the server-backed tests find PostgreSQL, and what they do when it is not there.
//
// `DATABASE_URL` defaults to the local server. When it cannot be reached, `CI=true` fails the run
// (importing this module throws); anywhere else the server-backed suites are skipped through
// node:test's `{ skip: reason }` option, with a banner on stderr so nobody mistakes a skip for a
// pass. Works the same under Node (`node --import tsx --test`) and `deno test`.
import process from "node:process";
import pg from "pg";
import { databaseUrl } from "./support/harness.ts";

export { databaseUrl };

/**
 * The database session time zone of every test connection. The test command runs the process
 * with `TZ=America/New_York`: two zones far apart (and on different DST calendars), so any
 * instant computed from the process clock or parsed in the wrong zone is off by hours.
 */
export const DB_TIME_ZONE = "Pacific/Auckland";

const PROBE_TIMEOUT_MS = 3_000;

/** `url` with `options=-c TimeZone=…` added, so every connection made from it uses that zone. */
export function withTimeZone(url: string, timeZone: string = DB_TIME_ZONE): string {
  const parsed = new URL(url);
  const previous = parsed.searchParams.get("options");
  parsed.searchParams.set("options", `${previous ? `${previous} ` : ""}-c TimeZone=${timeZone}`);
  return parsed.toString();
}

/** A schema name no other run, file or transport suite will pick: `prefix_` + random suffix. */
export function randomSchema(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** `url` with its password hidden, for messages. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable DATABASE_URL)";
  }
}

async function probe(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
  // A dropped connection must not become an unhandled 'error' event.
  client.on("error", (): void => {});
  try {
    await client.connect();
    await client.query("select 1");
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch((): void => {});
  }
}

async function checkDatabase(): Promise<string | undefined> {
  const url = databaseUrl();
  const failure = await probe(url);
  if (failure === undefined) return undefined;
  const reason = `PostgreSQL at ${redact(url)} is unreachable (${failure})`;
  if (process.env.CI === "true") {
    throw new Error(`${reason}: CI=true, so the server-backed tests must run. Start PostgreSQL or set DATABASE_URL.`);
  }
  const line = "!".repeat(100);
  console.warn(
    `\n${line}\n!! SKIPPING the server-backed test suites: ${reason}.\n` +
      `!! Start PostgreSQL or set DATABASE_URL to run them; with CI=true this fails the run instead.\n${line}\n`,
  );
  return `${reason}; set DATABASE_URL or start PostgreSQL`;
}

/**
 * `undefined` when PostgreSQL is reachable; otherwise the reason, to pass as node:test's
 * `{ skip: dbSkip }` on every suite that needs the server.
 */
export const dbSkip: string | undefined = await checkDatabase();

/** An admin pool (not counted anywhere) for setting up and inspecting tables. */
export function adminPool(timeZone: string = DB_TIME_ZONE): pg.Pool {
  const pool = new pg.Pool({ connectionString: withTimeZone(databaseUrl(), timeZone), max: 2 });
  pool.on("error", (): void => {});
  return pool;
}

/** The seed's table (schema.sql before the user columns): key, data, expiry. */
export function seedTableSql(table: string): string {
  return `CREATE TABLE ${table} (
  session_key char(64) NOT NULL PRIMARY KEY,
  session_data bytea,
  session_expiry timestamp NOT NULL
)`;
}
