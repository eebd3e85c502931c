/**
 * The SQL text of every store statement, built once per store. Each operation is ONE statement so
 * that it is one round trip on Neon's HTTP transport.
 *
 * Expiry instants come from the database clock only: `now()` read as UTC wall time, compared
 * with the `timestamp` column, so neither the process `TZ` nor the database `TimeZone` matters.
 *
 * `session_data` is an 8-byte header, the big-endian microseconds since the epoch at which the
 * session was created (database clock), followed by the CBOR payload. The header is what lets
 * the seed's three-column table enforce an absolute lifetime.
 *
 * @module
 */

/** How the store's options shape its SQL. Durations are whole seconds. */
export interface SqlOptions {
  table: string;
  ttl: number;
  absoluteTtl: number | null;
  touchAfter: number;
}

/** The statements of one store. */
export interface Statements {
  read: string;
  insert: string;
  update: string;
  regenerate: string;
  rekey: string;
  exists: string;
  destroy: string;
  count: string;
}

/** The size of the header that precedes the CBOR payload in `session_data`. */
export const HEADER_BYTES = 8;

const NOW = "(now() AT TIME ZONE 'UTC')";
const NEW_HEADER = "int8send((extract(epoch FROM now()) * 1000000)::int8)";
// The latest instant a header may claim, 9999-12-31: a corrupt header must not become an SQL
// "timestamp out of range" error on every read.
const MAX_MICROS = "253402300799000000";

function seconds(n: number): string {
  return `interval '${n} seconds'`;
}

function created(col: string): string {
  const micros = `('x' || encode(substr(${col}, 1, 8), 'hex'))::bit(64)::int8`;
  return `(CASE WHEN octet_length(${col}) >= 8 THEN timestamp 'epoch' + least(greatest(${micros}, 0), ${MAX_MICROS}) * interval '1 microsecond' END)`;
}

function ms(col: string): string {
  return `(extract(epoch FROM ${col}) * 1000)::float8`;
}

// Seconds left, by the database clock, for the cookie's Max-Age.
function left(col: string): string {
  return `extract(epoch FROM (${col} - ${NOW}))::float8`;
}

/**
 * Validates and quotes a table name, optionally schema-qualified (`"app.session"`).
 *
 * @throws {TypeError} When a part is not a plain SQL identifier.
 */
export function quoteTable(table: string): string {
  const parts = table.split(".");
  if (parts.length > 2 || !parts.every((p) => /^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(p))) {
    throw new TypeError(`Cannot use table name ${JSON.stringify(table)}: expected "name" or "schema.name" of letters, digits and underscores`);
  }
  return parts.map((p) => `"${p}"`).join(".");
}

/**
 * Builds the statements for a store.
 *
 * @param options Validated options.
 * @returns SQL text, parameters numbered `$1`, `$2`, …
 */
export function buildStatements(options: SqlOptions): Statements {
  // withSession may make a store per request (Workers); the text depends only on these options.
  const cacheKey = `${options.table}|${options.ttl}|${options.absoluteTtl}|${options.touchAfter}`;
  let statements = cache.get(cacheKey);
  if (!statements) {
    if (cache.size >= 32) cache.clear();
    statements = build(options);
    cache.set(cacheKey, statements);
  }
  return statements;
}

const cache = new Map<string, Statements>();

function build(options: SqlOptions): Statements {
  const t = quoteTable(options.table);
  const ttl = seconds(options.ttl);
  const abs = options.absoluteTtl === null ? null : seconds(options.absoluteTtl);
  const touch = seconds(options.touchAfter);
  const live = (q: string): string =>
    `${q}session_expiry > ${NOW}` +
    (abs ? ` AND coalesce(${created(`${q}session_data`)} + ${abs} > ${NOW}, true)` : "");
  // The expiry a session would have if touched now: idle timeout, capped by the absolute one.
  const ideal = (col: string): string => (abs ? `least(${NOW} + ${ttl}, ${created(col)} + ${abs})` : `${NOW} + ${ttl}`);
  const firstExpiry = options.absoluteTtl !== null && options.absoluteTtl < options.ttl ? `${NOW} + ${abs}` : `${NOW} + ${ttl}`;

  return {
    // Read, and roll the stored expiry forward in the same statement when it is staler than
    // touchAfter: never a second round trip, never a write on every read.
    read: `WITH cur AS (
  SELECT session_data, session_expiry, ${ideal("session_data")} AS ideal
  FROM ${t} WHERE session_key = $1 AND ${live("")}
), upd AS (
  UPDATE ${t} AS s SET session_expiry = cur.ideal FROM cur
  WHERE s.session_key = $1 AND cur.ideal > cur.session_expiry + ${touch}
  RETURNING s.session_expiry
)
SELECT cur.session_data AS data, ${ms("coalesce(upd.session_expiry, cur.session_expiry)")} AS expires,
  ${left("coalesce(upd.session_expiry, cur.session_expiry)")} AS remaining, upd.session_expiry IS NOT NULL AS rolled
FROM cur LEFT JOIN upd ON true`,

    insert: `INSERT INTO ${t} (session_key, session_data, session_expiry)
VALUES ($1, ${NEW_HEADER} || $2::bytea, ${firstExpiry})
RETURNING ${ms("session_expiry")} AS expires, ${left("session_expiry")} AS remaining, sha256(session_data) AS hash`,

    // UPDATE only, never an upsert: a session destroyed or expired meanwhile stays gone. The
    // write applies only if the data is still what this writer read ($3 is its SHA-256);
    // otherwise the current data comes back so the writer can merge its changes and retry.
    update: `WITH cur AS (
  SELECT session_data, session_expiry, ${ideal("session_data")} AS ideal
  FROM ${t} WHERE session_key = $1 AND ${live("")}
  FOR UPDATE
), upd AS (
  UPDATE ${t} AS s SET
    session_data = (CASE WHEN octet_length(cur.session_data) >= 8 THEN substr(cur.session_data, 1, 8) ELSE ${NEW_HEADER} END) || $2::bytea,
    session_expiry = CASE WHEN cur.ideal > cur.session_expiry + ${touch} THEN cur.ideal ELSE cur.session_expiry END
  FROM cur
  WHERE s.session_key = $1 AND coalesce(sha256(cur.session_data), '\\x'::bytea) = $3::bytea
  RETURNING ${ms("s.session_expiry")} AS expires, ${left("s.session_expiry")} AS remaining,
    s.session_expiry <> cur.session_expiry AS rolled, sha256(s.session_data) AS hash
)
SELECT upd.expires, upd.remaining, upd.rolled, upd.hash, EXISTS (SELECT 1 FROM cur) AS present,
  CASE WHEN upd.expires IS NULL THEN (SELECT session_data FROM cur) END AS current
FROM (VALUES (1)) AS one (x) LEFT JOIN upd ON true`,

    // Move a live session to a new key, data kept, old key gone, lifetime restarted: atomic.
    regenerate: `WITH old AS (
  DELETE FROM ${t} AS o WHERE o.session_key = $1
  RETURNING o.session_data, ${live("o.")} AS live
)
INSERT INTO ${t} (session_key, session_data, session_expiry)
SELECT $2, CASE WHEN octet_length(old.session_data) >= 8 THEN ${NEW_HEADER} || substr(old.session_data, 9) ELSE old.session_data END, ${firstExpiry}
FROM old WHERE old.live
RETURNING session_data AS data, ${ms("session_expiry")} AS expires, ${left("session_expiry")} AS remaining`,

    // Like regenerate, with new data from the writer, and the same compare-and-set as update:
    // when the data changed since it was read, nothing moves and the current data comes back.
    rekey: `WITH cur AS (
  SELECT session_data FROM ${t} WHERE session_key = $1 AND ${live("")}
  FOR UPDATE
), old AS (
  DELETE FROM ${t} AS o USING cur
  WHERE o.session_key = $1 AND coalesce(sha256(cur.session_data), '\\x'::bytea) = $4::bytea
  RETURNING 1
), ins AS (
  INSERT INTO ${t} (session_key, session_data, session_expiry)
  SELECT $2, ${NEW_HEADER} || $3::bytea, ${firstExpiry} FROM old
  RETURNING ${ms("session_expiry")} AS expires, ${left("session_expiry")} AS remaining, sha256(session_data) AS hash
)
SELECT ins.expires, ins.remaining, ins.hash, EXISTS (SELECT 1 FROM cur) AS present,
  CASE WHEN ins.expires IS NULL THEN (SELECT session_data FROM cur) END AS current
FROM (VALUES (1)) AS one (x) LEFT JOIN ins ON true`,

    exists: `SELECT EXISTS (SELECT 1 FROM ${t} WHERE session_key = $1 AND ${live("")}) AS found`,
    destroy: `DELETE FROM ${t} WHERE session_key = $1 RETURNING true AS deleted`,
    count: `SELECT count(*) AS n FROM ${t} WHERE ${live("")}`,
  };
}
