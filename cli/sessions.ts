/**
 * `pgsession sessions --user ID`: the live sessions of one user, one line each; and what
 * `pgsession revoke` shares with it.
 *
 * @module
 */

import type { Client } from "pg";
import { quoteTable } from "../src/_sql.ts";
import { SessionError } from "../src/errors.ts";
import { PostgresStore } from "../src/store.ts";
import { CliError, EXIT } from "./_fail.ts";
import type { Output } from "./_output.ts";

/** Labels longer than this still print whole; they just stop widening the column. */
const MAX_LABEL_COLUMN = 40;

/**
 * Lists a user's live sessions: handle, label, created, last active, expires (UTC).
 *
 * @param client An open connection.
 * @param table The table, optionally schema-qualified.
 * @param user The user id the application bound with `regenerate({ user })`.
 * @param out Where to print.
 * @returns The exit code.
 */
export async function listSessions(client: Client, table: string, user: string, out: Output): Promise<number> {
  let list;
  try {
    list = await storeOn(client, table).sessionsOf(user);
  } catch (error) {
    throw migrationHint(error, "list sessions", table);
  }
  const who = printable(JSON.stringify(user));
  if (list.length === 0) {
    out.write(`No live sessions of user ${who} in ${quoteTable(table)}\n`);
    return EXIT.OK;
  }
  const rows = list.map((
    s,
  ) => [s.handle, printable(s.label ?? "-"), utc(s.created), utc(s.lastActive), utc(s.expires)]);
  const header = ["HANDLE", "LABEL", "CREATED", "LAST ACTIVE", "EXPIRES"];
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => Math.min(r[i]!.length, i === 1 ? MAX_LABEL_COLUMN : Infinity)))
  );
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ") + "\n";
  out.write(`${list.length} live session${list.length === 1 ? "" : "s"} of user ${who} in ${quoteTable(table)}\n`);
  out.write(line(header));
  for (const row of rows) out.write(line(row));
  return EXIT.OK;
}

/** A store on the CLI's open connection; the store never ends the connection itself. */
export function storeOn(client: Client, table: string): PostgresStore {
  return new PostgresStore({ client, table });
}

/**
 * Turns the store's `MIGRATION_REQUIRED` into the CLI's one-line hint; anything else passes.
 *
 * @param error What the store threw.
 * @param what Completes "Cannot …".
 * @param table The table, for the `--table` flag of the hint.
 */
export function migrationHint(error: unknown, what: string, table: string): unknown {
  if (error instanceof SessionError && error.code === "MIGRATION_REQUIRED") {
    const tableFlag = table === "session" ? "" : ` --table ${table}`;
    return new CliError(
      `Cannot ${what}: table ${
        JSON.stringify(table)
      } has no user column yet; add it with \`pgsession migrate${tableFlag}\` (keeps every session)`,
      EXIT.FAILED,
      { cause: error },
    );
  }
  return error;
}

/**
 * Text an application stored (a label made from a User-Agent header, a user id) with control
 * characters shown as `\xNN`: printed raw, an escape sequence could rewrite the terminal.
 */
export function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** `2026-11-25 22:31:05Z`: UTC to the second, as the database clock keeps it. */
export function utc(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace("T", " ")}Z`;
}
