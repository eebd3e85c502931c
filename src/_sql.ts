/**
 * Every SQL text pgsession sends, in one place: the store's statements, the GC batch, the CLI's
 * statistics and the table's DDL.
 *
 * One clock: every instant comes from the database's `now()`, read as UTC wall time and compared
 * with the `timestamp` columns, so neither the process `TZ` nor the database `TimeZone` matters.
 * Instants cross to TypeScript as float8 milliseconds since the epoch; the store decides liveness
 * and whether a touch is due from the `now` a statement returns, never from the JS clock.
 *
 * Each store operation is one statement, so it is one round trip on Neon's HTTP transport.
 * Statements that write take a lock-timeout parameter: `set_config('lock_timeout', …, true)` is a
 * qual evaluated before the row lock is awaited, so a row held by another transaction bounds the
 * wait inside the same round trip, and the setting ends with the statement's transaction.
 *
 * @module
 */

import { createdSql, HEADER_BYTES, headerSql, NEW_HEADER_SQL, restartedSql } from "./_format.ts";

/** The database clock as UTC wall time, comparable with the `timestamp` columns. */
export const NOW = "(now() AT TIME ZONE 'UTC')";

/** How the store's options shape its SQL. Durations are whole seconds. */
export interface SqlOptions {
  table: string;
  ttl: number;
  absoluteTtl: number | null;
  touchAfter: number;
}

/**
 * The statements of one table, with their parameters. Rows carry instants as float8
 * milliseconds: `expires` (the row's), `now` (the database's).
 *
 * Only the statements named `…User`, `sessionsOf`, `revoke` and `revokeAll` mention the user
 * columns (`session_user_id`, `session_label`); on a table of the seed's shape, without them, they
 * fail (`MIGRATION_REQUIRED`) and every other statement works. `read` and `move` return the user
 * columns when the table has them and NULL when it does not: their subquery names the columns
 * unqualified, and PostgreSQL resolves such a name in the innermost scope that has it — the table,
 * or else the outer one-row `absent` relation. No detection, no failed statement.
 */
export interface Statements {
  /** `$1` key → `data`, `expires`, `now`, `user_id`, `label`; expired rows too (the store decides). */
  read: string;
  /** `$1` key, `$2` payload → `data` (header included), `expires`, `now`. */
  insert: string;
  /** {@linkcode Statements.insert} binding `$3` user, `$4` label. */
  insertUser: string;
  /**
   * Compare-and-set. `$1` key, `$2` new data, `$3` data as read, `$4` absolute deadline (ms or
   * NULL), `$5` lock timeout (ms, text) → `expires`, `now` when written; no row when the data
   * changed meanwhile or the session is gone (the writer then reads the row and merges).
   */
  update: string;
  /**
   * `$1` key, `$2` absolute deadline (ms or NULL), `$3` lock timeout → `expires`, `now` while the
   * session is live (its expiry moved forward, or already further); no row when it is gone.
   */
  touch: string;
  /**
   * Regenerate: the row's key changes in place (an UPDATE, so a revocation that waits on the row
   * follows it to its new key). `$1` old key, `$2` new key, `$3` restart the lifetime (bool), `$4`
   * lock timeout → `data`, `expires`, `now`, `user_id`, `label`.
   */
  move: string;
  /** {@linkcode Statements.move} binding `$5` user, `$6` label. */
  moveUser: string;
  /**
   * Regenerate with new data and compare-and-set. `$1` old key, `$2` new key, `$3` new data
   * (header included), `$4` data as read, `$5` restart (bool), `$6` lock timeout, `$7` absolute
   * deadline (ms or NULL) → `data`, `expires`, `now` when moved; no row otherwise.
   */
  moveChanged: string;
  /** {@linkcode Statements.moveChanged} binding `$8` user, `$9` label. */
  moveChangedUser: string;
  /** `$1` key, `$2` lock timeout → one row per deleted row. */
  destroy: string;
  /** → `n`, live sessions. */
  count: string;
  /** `$1` user → `key`, `header`, `expires`, `now`, `label` of each live session. */
  sessionsOf: string;
  /**
   * `$1` key, `$2` user or NULL, `$3` lock timeout → `live` per deleted row. Also ends the session
   * if it regenerates while the statement waits for its row: the new version keeps the user and
   * the creation header it had, and the statement matches those too.
   */
  revoke: string;
  /** `$1` user, `$2` key to keep or NULL, `$3` lock timeout → `live` per deleted row. */
  revokeAll: string;
}

/** The optional columns that bind sessions to users. */
export const USER_COLUMNS: readonly string[] = ["session_user_id", "session_label"];

function seconds(n: number): string {
  return `interval '${n} seconds'`;
}

/** Milliseconds since the epoch of a `timestamp` expression, as float8. */
function ms(expression: string): string {
  return `(extract(epoch FROM ${expression}) * 1000)::float8`;
}

/** The instant of a float8-milliseconds parameter (NULL stays NULL). */
function instant(param: string): string {
  return `(timestamp 'epoch' + ${param}::float8 * interval '1 millisecond')`;
}

/** The lock-timeout qual; true whenever evaluated. */
function lockTimeout(param: string): string {
  return `set_config('lock_timeout', ${param}::text, true) IS NOT NULL`;
}

/**
 * Validates and quotes a table name, optionally schema-qualified (`"app.session"`).
 *
 * @throws {TypeError} When a part is not a plain SQL identifier.
 */
export function quoteTable(table: string): string {
  const parts = table.split(".");
  if (parts.length > 2 || !parts.every((p) => /^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(p))) {
    throw new TypeError(
      `Cannot use table name ${
        JSON.stringify(table)
      }: expected "name" or "schema.name" of letters, digits and underscores`,
    );
  }
  return parts.map((p) => `"${p}"`).join(".");
}

/** The names of the table's constraint and index, derived from the table's own name. */
export function indexNames(table: string): { primaryKey: string; expiry: string; user: string } {
  const name = table.split(".").at(-1)!;
  return { primaryKey: `${name}_key`, expiry: `${name}_expiry_idx`, user: `${name}_user_idx` };
}

/**
 * Builds the statements for a table and lifetimes; cached by options, since a per-request store
 * (Workers) would otherwise rebuild the same text on every request.
 *
 * @param options Validated options.
 * @returns SQL text, parameters numbered `$1`, `$2`, …
 */
export function buildStatements(options: SqlOptions): Statements {
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
  // The expiry a session would have if used now: idle timeout, capped by its absolute deadline.
  const ideal = (deadline: string): string => `least(${NOW} + ${ttl}, ${instant(deadline)})`;
  const firstExpiry = options.absoluteTtl !== null && options.absoluteTtl < options.ttl
    ? `${NOW} + ${abs}`
    : `${NOW} + ${ttl}`;
  const created = createdSql("session_data");
  const live = (prefix: string): string =>
    `${prefix}session_expiry > ${NOW}` +
    (abs ? ` AND coalesce(${createdSql(`${prefix}session_data`)} + ${abs} > ${NOW}, true)` : "");
  const keptExpiry = abs ? `least(${NOW} + ${ttl}, ${created} + ${abs})` : `${NOW} + ${ttl}`;
  const returned = `session_data AS data, ${ms("session_expiry")} AS expires, ${ms(NOW)} AS now`;
  // The user columns of `source` when the table has them, NULL when it does not (see Statements).
  const withUser = (source: string): string =>
    `SELECT r.* FROM (SELECT NULL::text AS session_user_id, NULL::text AS session_label) AS absent,
LATERAL (SELECT ${returned}, session_user_id AS user_id, session_label AS label FROM ${source}) AS r`;
  const insert = (users: boolean): string =>
    `INSERT INTO ${t} (session_key, session_data, session_expiry${users ? ", session_user_id, session_label" : ""})
VALUES ($1, ${NEW_HEADER_SQL} || $2::bytea, ${firstExpiry}${users ? ", $3::text, $4::text" : ""})
RETURNING ${returned}`;
  const move = (users: boolean): string =>
    `WITH moved AS (
  UPDATE ${t} SET session_key = $2,
    session_data = CASE WHEN $3::bool AND octet_length(session_data) >= ${HEADER_BYTES} THEN ${
      restartedSql("session_data")
    } ELSE session_data END,
    session_expiry = CASE WHEN $3::bool THEN ${firstExpiry} ELSE ${keptExpiry} END${
      users ? ", session_user_id = $5::text, session_label = $6::text" : ""
    }
  WHERE session_key = $1 AND ${live("")} AND ${lockTimeout("$4")}
  RETURNING *
)
${withUser("moved")}`;
  const moveChanged = (users: boolean): string =>
    `UPDATE ${t} SET session_key = $2,
    session_data = CASE WHEN $5::bool THEN ${restartedSql("$3::bytea")} ELSE $3::bytea END,
    session_expiry = CASE WHEN $5::bool THEN ${firstExpiry} ELSE ${ideal("$7")} END${
      users ? ", session_user_id = $8::text, session_label = $9::text" : ""
    }
WHERE session_key = $1 AND session_data IS NOT DISTINCT FROM $4::bytea AND session_expiry > ${NOW} AND ${
      ideal("$7")
    } > ${NOW}
  AND ${lockTimeout("$6")}
RETURNING session_data AS data, ${ms("session_expiry")} AS expires, ${ms(NOW)} AS now`;

  return {
    read: withUser(`${t} WHERE session_key = $1`),
    insert: insert(false),
    insertUser: insert(true),

    // UPDATE only, never an upsert: a session destroyed or expired meanwhile stays gone.
    update: `UPDATE ${t} SET session_data = $2::bytea,
  session_expiry = CASE WHEN ${ideal("$4")} > session_expiry + ${touch} THEN ${ideal("$4")} ELSE session_expiry END
WHERE session_key = $1 AND session_data IS NOT DISTINCT FROM $3::bytea AND session_expiry > ${NOW} AND ${
      ideal("$4")
    } > ${NOW}
  AND ${lockTimeout("$5")}
RETURNING ${ms("session_expiry")} AS expires, ${ms(NOW)} AS now`,

    touch: `UPDATE ${t} SET session_expiry = greatest(session_expiry, ${ideal("$2")})
WHERE session_key = $1 AND session_expiry > ${NOW} AND ${ideal("$2")} > ${NOW} AND ${lockTimeout("$3")}
RETURNING ${ms("session_expiry")} AS expires, ${ms(NOW)} AS now`,

    move: move(false),
    moveUser: move(true),
    moveChanged: moveChanged(false),
    moveChangedUser: moveChanged(true),

    destroy: `DELETE FROM ${t} WHERE session_key = $1 AND ${lockTimeout("$2")} RETURNING true AS deleted`,

    count: `SELECT count(*) AS n FROM ${t} WHERE ${live("")}`,

    sessionsOf: `SELECT session_key AS key, ${headerSql("session_data")} AS header, ${ms("session_expiry")} AS expires,
  ${ms(NOW)} AS now, session_label AS label
FROM ${t} WHERE session_user_id = $1 AND session_expiry > ${NOW}
ORDER BY session_expiry DESC LIMIT 1000`,

    revoke: `WITH target AS (
  SELECT session_user_id AS user_id, ${headerSql("session_data")} AS header FROM ${t}
  WHERE session_key = $1 AND ($2::text IS NULL OR session_user_id = $2::text)
)
DELETE FROM ${t} AS s USING target
WHERE (s.session_key = $1 OR (s.session_user_id = target.user_id AND ${headerSql("s.session_data")} = target.header))
  AND ($2::text IS NULL OR s.session_user_id = $2::text) AND ${lockTimeout("$3")}
RETURNING (${live("s.")}) AS live`,

    revokeAll: `DELETE FROM ${t} AS s WHERE s.session_user_id = $1 AND s.session_key IS DISTINCT FROM $2::char(64)
  AND ${lockTimeout("$3")} RETURNING (${live("s.")}) AS live`,
  };
}

/**
 * The statements that move express-session + connect-pg-simple sessions into a pgsession table:
 * `readSql` (`$1` sid → `sess` as text of a live old session) and `adoptSql` (`$1` sid, `$2` sess
 * as read, `$3` the new key, `$4` CBOR payload or NULL to only delete → `deleted`, `inserted`).
 *
 * @param legacyTable connect-pg-simple's table (`sid`, `sess` json, `expire`).
 * @param target pgsession's table and lifetimes.
 */
export function legacyStatements(
  legacyTable: string,
  target: { table: string; ttl: number; absoluteTtl: number | null },
): { readSql: string; adoptSql: string } {
  const old = quoteTable(legacyTable);
  const own = quoteTable(target.table);
  const firstExpiry = target.absoluteTtl !== null && target.absoluteTtl < target.ttl
    ? `${NOW} + ${seconds(target.absoluteTtl)}`
    : `${NOW} + ${seconds(target.ttl)}`;
  return {
    // connect-pg-simple compares `expire` (a timestamp without time zone) with an instant the
    // same way: converted in the connection's TimeZone.
    readSql: `SELECT sess::text AS sess FROM ${old} WHERE sid = $1 AND expire > now()`,
    // One statement: the old row is deleted (only as it was read) and the new one inserted, or
    // neither. A concurrent request's DELETE waits for this one and then finds no row.
    adoptSql: `WITH old AS (
  DELETE FROM ${old} WHERE sid = $1 AND sess::text = $2 AND expire > now()
  RETURNING 1 AS one
), ins AS (
  INSERT INTO ${own} (session_key, session_data, session_expiry)
  SELECT $3, ${NEW_HEADER_SQL} || $4::bytea, ${firstExpiry} FROM old WHERE $4::bytea IS NOT NULL
  ON CONFLICT (session_key) DO NOTHING
  RETURNING 1 AS one
)
SELECT (SELECT count(*) FROM old)::int AS deleted, (SELECT count(*) FROM ins)::int AS inserted`,
  };
}

/**
 * One GC batch: `$1` the batch size, `$2` where the previous batch ended (`'-infinity'` at the
 * start) → `n` rows deleted, `last` the latest expiry deleted (text, microseconds kept).
 *
 * The sub-select walks the `session_expiry` index oldest first from where the previous batch
 * ended (a keyset: it never re-walks the index entries of rows already deleted, which stay until
 * VACUUM) and locks what it takes with `SKIP LOCKED`, so concurrent collectors split the work and
 * a row a request is writing right now is left alone. The DELETE finds the rows by `ctid` (a TID
 * scan) and checks the expiry once more.
 */
export function gcBatchSql(table: string): string {
  const t = quoteTable(table);
  return `WITH gone AS (
  DELETE FROM ${t} WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM ${t}
    WHERE session_expiry >= $2::timestamp AND session_expiry <= ${NOW}
    ORDER BY session_expiry LIMIT $1
    FOR UPDATE SKIP LOCKED))
  AND session_expiry <= ${NOW}
  RETURNING session_expiry
)
SELECT count(*) AS n, max(session_expiry)::text AS last FROM gone`;
}

/** The CLI's statistics: live and expired counts by the expiry column, and sizes. `$1` is the quoted table. */
export function statsSql(table: string): string {
  return `SELECT count(*) FILTER (WHERE session_expiry > ${NOW}) AS live,
  count(*) FILTER (WHERE session_expiry <= ${NOW}) AS expired,
  extract(epoch FROM ${NOW} - min(session_expiry))::float8 AS oldest_expired_s,
  pg_table_size($1::text::regclass) AS table_bytes,
  pg_indexes_size($1::text::regclass) AS index_bytes
FROM ${quoteTable(table)}`;
}

/**
 * The DDL for a session table: a `char(64)` key (hex SHA-256 of the id), `bytea` data and a
 * `timestamp` expiry, plus an index on the expiry for garbage collection. Idempotent.
 */
export function tableSql(table: string): string {
  const quoted = quoteTable(table);
  const names = indexNames(table);
  return `CREATE TABLE IF NOT EXISTS ${quoted} (
  session_key char(64) NOT NULL,
  session_data bytea,
  session_expiry timestamp NOT NULL,
  CONSTRAINT "${names.primaryKey}" PRIMARY KEY (session_key)
);

CREATE INDEX IF NOT EXISTS "${names.expiry}" ON ${quoted} (session_expiry);

-- Optional, for listing a user's sessions and signing them out everywhere. Tables without these
-- columns work for everything else; \`pgsession migrate\` adds them to an existing table.
ALTER TABLE ${quoted} ADD COLUMN IF NOT EXISTS session_user_id text, ADD COLUMN IF NOT EXISTS session_label text;

CREATE INDEX IF NOT EXISTS "${names.user}" ON ${quoted} (session_user_id) WHERE session_user_id IS NOT NULL;
`;
}

// The CLI's statements.

/**
 * Whether a table has both user columns (`session_user_id`, `session_label`): `$1` the quoted
 * table → `present`, false when there is no such table. By the table's regclass, so the name
 * resolves exactly as the statements resolve it (`search_path` included).
 */
export function userColumnsSql(): string {
  return `SELECT count(*) = ${USER_COLUMNS.length} AS present FROM pg_attribute
WHERE attrelid = to_regclass($1) AND attname IN (${USER_COLUMNS.map((c) => `'${c}'`).join(", ")}) AND NOT attisdropped`;
}

/** Live sessions with a user and how many users they belong to: → `sessions`, `users`. */
export function userStatsSql(table: string): string {
  return `SELECT count(session_user_id) AS sessions, count(DISTINCT session_user_id) AS users
FROM ${quoteTable(table)} WHERE session_expiry > ${NOW}`;
}

/** The columns every session table has; `pgsession migrate` refuses a table without them. */
export const SESSION_COLUMNS: readonly string[] = ["session_key", "session_data", "session_expiry"];

/** Concurrent migrations (two deploys at once) wait for each other instead of colliding. */
export const MIGRATE_LOCK_SQL: string = "SELECT pg_advisory_xact_lock(hashtext('pgsession migrate'))";

/**
 * What `pgsession migrate` finds before it changes anything: `$1` the schema or NULL, `$2` the
 * quoted table → `schema`, `table`, `expiry_index`, `user_index` (whether each exists) and
 * `columns`, the table's column names in order (NULL without a table).
 */
export function migrateStateSql(table: string): string {
  const names = indexNames(table);
  const quoted = quoteTable(table);
  const schema = quoted.includes(".") ? `${quoted.split(".")[0]}.` : "";
  return `SELECT ($1::text IS NULL OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)) AS schema,
  to_regclass($2) IS NOT NULL AS table,
  to_regclass('${schema}"${names.expiry}"') IS NOT NULL AS expiry_index,
  to_regclass('${schema}"${names.user}"') IS NOT NULL AS user_index,
  (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
    WHERE attrelid = to_regclass($2) AND attnum > 0 AND NOT attisdropped) AS columns`;
}

/** `pgsession migrate`'s DDL: the schema of a qualified name if missing, then {@linkcode tableSql}. */
export function migrateSql(table: string): string {
  const schema = table.includes(".") ? `CREATE SCHEMA IF NOT EXISTS ${quoteTable(table).split(".")[0]};\n\n` : "";
  return schema + tableSql(table);
}
