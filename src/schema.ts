/**
 * The table pgsession stores sessions in.
 *
 * @module
 */

import { quoteTable } from "./_sql.ts";

/**
 * The DDL for a session table: beego's table exactly (a `char(64)` key, `bytea` data and a
 * `timestamp` expiry) plus an index on the expiry for garbage collection. Idempotent. For the
 * default table it is the text of `schema.sql`.
 *
 * @param table Table name, optionally schema-qualified.
 * @default table "session"
 * @returns SQL statements separated by `;`, safe to run twice.
 * @example
 * ```ts
 * import { schemaSql } from "pgsession";
 *
 * console.assert(schemaSql("app.session").includes(`CREATE TABLE IF NOT EXISTS "app"."session"`));
 * ```
 */
export function schemaSql(table: string = "session"): string {
  const quoted = quoteTable(table);
  const name = table.split(".").at(-1)!;
  return `CREATE TABLE IF NOT EXISTS ${quoted} (
  session_key char(64) NOT NULL,
  session_data bytea,
  session_expiry timestamp NOT NULL,
  CONSTRAINT "${name}_key" PRIMARY KEY (session_key)
);

CREATE INDEX IF NOT EXISTS "${name}_expiry_idx" ON ${quoted} (session_expiry);
`;
}
