/**
 * The table pgsession stores sessions in.
 *
 * @module
 */

import { tableSql } from "./_sql.ts";

/**
 * The DDL for a session table: a `char(64)` key (the hex SHA-256 of the id), `bytea` data and a
 * `timestamp` expiry, plus an index on the expiry for garbage collection. Idempotent. For the
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
  return tableSql(table);
}
