/**
 * `pgsession migrate`: creates the session table and its indexes, as `schema.sql` does, or adds
 * the user columns to a table from before them.
 *
 * @module
 */

import type { Client } from "pg";
import {
  indexNames,
  MIGRATE_LOCK_SQL,
  migrateSql,
  migrateStateSql,
  quoteTable,
  SESSION_COLUMNS,
  USER_COLUMNS,
  userColumnsSql,
} from "../src/_sql.ts";
import { CliError, EXIT } from "./_fail.ts";
import type { Output } from "./_output.ts";

/** express-session's store for PostgreSQL names its table `session` too. */
const CONNECT_PG_SIMPLE_COLUMNS: readonly string[] = ["sid", "sess", "expire"];

/**
 * Applies the schema, idempotently, in one transaction, and says what it did.
 *
 * @param client An open connection.
 * @param table The table, optionally schema-qualified.
 * @param out Where to print one line per object.
 * @returns The exit code.
 * @throws {CliError} When a table of that name exists and is not a session table; nothing is changed then.
 */
export async function migrate(client: Client, table: string, out: Output): Promise<number> {
  const schema = table.includes(".") ? table.split(".")[0]! : null;
  const quoted = quoteTable(table);
  const qualify = (name: string): string => (schema ? `"${schema}".` : "") + `"${name}"`;
  const names = indexNames(table);

  await client.query("BEGIN");
  try {
    await client.query(MIGRATE_LOCK_SQL);
    const { rows: [before] } = await client.query(migrateStateSql(table), [schema, quoted]);
    const { rows: [users] } = await client.query(userColumnsSql(), [quoted]);
    if (before.table) refuseForeignTable(table, before.columns ?? []);
    await client.query(migrateSql(table));
    await client.query("COMMIT");

    const lines: string[] = [];
    if (schema) lines.push(before.schema ? `Schema "${schema}" already exists` : `Created schema "${schema}"`);
    lines.push(before.table ? `Table ${quoted} already exists` : `Created table ${quoted}`);
    lines.push(
      before.expiry_index ? `Index ${qualify(names.expiry)} already exists` : `Created index ${qualify(names.expiry)}`,
    );
    if (before.table) {
      lines.push(
        users.present
          ? `User columns ${USER_COLUMNS.join(", ")} already exist`
          : `Added the user columns ${USER_COLUMNS.join(", ")} to ${quoted} (every session kept)`,
      );
    }
    lines.push(
      before.user_index
        ? `Index ${qualify(names.user)} already exists`
        : `Created index ${qualify(names.user)} (sessions by user)`,
    );
    if ((!schema || before.schema) && before.table && before.expiry_index && users.present && before.user_index) {
      lines.push("Nothing to do: the schema is up to date, nothing was added");
    }
    out.write(lines.map((line) => `${line}\n`).join(""));
    return EXIT.OK;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

/** A table of that name made by something else: say what it is and how to keep both. */
function refuseForeignTable(table: string, columns: string[]): void {
  if (SESSION_COLUMNS.every((c) => columns.includes(c))) return;
  const found = CONNECT_PG_SIMPLE_COLUMNS.every((c) => columns.includes(c))
    ? `is connect-pg-simple's (${CONNECT_PG_SIMPLE_COLUMNS.join(", ")}), not pgsession's`
    : `has columns ${columns.join(", ") || "(none)"}, not pgsession's (${SESSION_COLUMNS.join(", ")})`;
  throw new CliError(
    `Cannot migrate: table ${JSON.stringify(table)} ${found}; nothing was changed. To keep it, give pgsession ` +
      "a table of its own with `pgsession migrate --table <another name>` and the same name in the store's table option",
    EXIT.USAGE,
  );
}
