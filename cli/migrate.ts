/**
 * `pgsession migrate`: creates the session table and its expiry index, as `schema.sql` does.
 *
 * @module
 */

import type { Client } from "pg";
import { indexNames, quoteTable } from "../src/_sql.ts";
import { schemaSql } from "../src/schema.ts";
import { EXIT } from "./_fail.ts";
import type { Output } from "./_output.ts";

/**
 * Applies the schema, idempotently, in one transaction, and says what it did.
 *
 * @param client An open connection.
 * @param table The table, optionally schema-qualified.
 * @param out Where to print one line per object.
 * @returns The exit code.
 */
export async function migrate(client: Client, table: string, out: Output): Promise<number> {
  const parts = table.split(".");
  const schema = parts.length === 2 ? parts[0]! : null;
  const quoted = quoteTable(table);
  const names = indexNames(table);
  const index = (schema ? `"${schema}".` : "") + `"${names.expiry}"`;
  const exists = async (): Promise<{ schema: boolean; table: boolean; index: boolean; users: boolean }> => {
    const { rows } = await client.query(
      `SELECT ($1::text IS NULL OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)) AS schema,
              to_regclass($2) IS NOT NULL AS table, to_regclass($3) IS NOT NULL AS index,
              EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($2) AND attname = 'session_user_id'
                AND NOT attisdropped) AS users`,
      [schema, quoted, index],
    );
    return rows[0];
  };

  await client.query("BEGIN");
  try {
    // Concurrent migrations (say, two deploys at once) wait for each other instead of colliding.
    await client.query("SELECT pg_advisory_xact_lock(hashtext('pgsession migrate'))");
    const before = await exists();
    if (schema) await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(schemaSql(table));
    // A table of that name made by something else must still have our columns.
    await client.query(`SELECT session_key, session_data, session_expiry FROM ${quoted} LIMIT 0`);
    await client.query("COMMIT");
    if (schema) out.write(before.schema ? `Schema "${schema}" already exists\n` : `Created schema "${schema}"\n`);
    out.write(before.table ? `Table ${quoted} already exists\n` : `Created table ${quoted}\n`);
    out.write(before.index ? `Index ${index} already exists\n` : `Created index ${index}\n`);
    if (before.table) {
      out.write(
        before.users
          ? "User columns already exist\n"
          : "Added the user columns (session_user_id, session_label) and their index\n",
      );
    }
    if (before.schema && before.table && before.index && before.users) {
      out.write("Nothing to do: the schema is up to date\n");
    }
    return EXIT.OK;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}
