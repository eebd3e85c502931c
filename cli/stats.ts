/**
 * `pgsession stats`: how many sessions are live and expired, how many have a user, and how big the
 * table is.
 *
 * @module
 */

import type { Client } from "pg";
import { quoteTable, statsSql, userColumnsSql, userStatsSql } from "../src/_sql.ts";
import { EXIT } from "./_fail.ts";
import type { Output } from "./_output.ts";

const NUMBER = new Intl.NumberFormat("en-US");

/** `1536` → `"1.5 kB"`, powers of 1024 as PostgreSQL's `pg_size_pretty` counts. */
export function bytes(n: number): string {
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

/**
 * Prints counts by the expiry column (the database clock) and sizes.
 *
 * @param client An open connection.
 * @param table The table, optionally schema-qualified.
 * @param out Where to print.
 * @returns The exit code.
 */
export async function stats(client: Client, table: string, out: Output): Promise<number> {
  const quoted = quoteTable(table);
  const { rows } = await client.query(statsSql(table), [quoted]);
  const row = rows[0];
  const expired = Number(row.expired);
  const lines: [string, string][] = [
    ["live sessions", NUMBER.format(Number(row.live))],
    ["  with a user", await users(client, table)],
    ["expired sessions", NUMBER.format(expired)],
  ];
  if (expired > 0) lines.push(["oldest expired", `${age(Number(row.oldest_expired_s))} ago`]);
  lines.push(["table size", bytes(Number(row.table_bytes))], ["index size", bytes(Number(row.index_bytes))]);
  out.write(`Sessions in ${quoted}\n`);
  for (const [label, value] of lines) out.write(`  ${label.padEnd(17)} ${value}\n`);
  return EXIT.OK;
}

/**
 * Live sessions bound to a user and how many users they belong to; on a table from before the
 * user column, the hint to add it (stats itself must keep working there).
 */
async function users(client: Client, table: string): Promise<string> {
  const { rows: [column] } = await client.query(userColumnsSql(), [quoteTable(table)]);
  if (!column.present) return "unknown: no user columns yet; run pgsession migrate to add them";
  const { rows: [row] } = await client.query(userStatsSql(table));
  const sessions = Number(row.sessions);
  const users = Number(row.users);
  return `${NUMBER.format(sessions)} live session${sessions === 1 ? "" : "s"} of ${NUMBER.format(users)} user${
    users === 1 ? "" : "s"
  }`;
}

function age(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}
