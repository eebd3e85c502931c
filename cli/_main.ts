/**
 * The command dispatcher of `pgsession`, kept apart from the entry point so it can be imported.
 *
 * @module
 */

import process from "node:process";
import { type CommandLine, parseCommandLine } from "./_args.ts";
import { connect } from "./_connect.ts";
import { CliError, EXIT, explain } from "./_fail.ts";
import { runDevProxy } from "./dev_proxy.ts";
import { runGc } from "./gc.ts";
import { migrate } from "./migrate.ts";
import type { Output } from "./_output.ts";
import { revokeSessions } from "./revoke.ts";
import { listSessions } from "./sessions.ts";
import { stats } from "./stats.ts";
import { VERSION } from "./_version.ts";

/** The text of `pgsession --help`. */
export const HELP: string = `Usage: pgsession <command> [options]

Commands:
  migrate     Create the session table and its indexes, or add the user columns to an older one; safe to rerun
  gc          Delete expired sessions in short batches until none are left or the time is up
  stats       Count live and expired sessions (by session_expiry) and show table and index size
  sessions    List one user's live sessions (--user ID): handle, label, created, last active, expires
  revoke      Sign one user out everywhere (--user ID), or everywhere but one session (--except)
  dev-proxy   Serve Neon's HTTP (/sql) and WebSocket endpoints in front of a local PostgreSQL, so
              Workers, Vercel Edge and Deno code runs unchanged in local development

Options:
  --url URL             PostgreSQL URL, postgres://user:password@host:port/database
                        (default: the DATABASE_URL environment variable)
  --table NAME          The session table, optionally schema.name (default: session)
  --batch-size N        gc: rows per batch, each its own short statement, 1-100000 (default: 1000)
  --max-duration S      gc: start no batch after S seconds, or "none" (default: 25)
  --user ID             sessions, revoke: the user id the application bound at sign-in
  --except HANDLE       revoke: keep this session (a handle from \`pgsession sessions\`)
  --connect-timeout S   Wait at most S seconds for the database to answer (default: 10)
  --database URL        dev-proxy: the local database the app uses (same as --url)
  --port N              dev-proxy: the port to listen on (default: 4444; 0: any free port)
  --host ADDRESS        dev-proxy: the address to listen on (default: 127.0.0.1, loopback only)
  -h, --help            Show this help
  -v, --version         Print the version

Exit codes:
  0    done
  1    the database failed, could not be reached, or the table is missing
  2    usage or set-up: a bad command line or URL, an --except handle that is none of the
       user's sessions, a table of that name that is not pgsession's, pg (or, for
       dev-proxy, ws) not installed
  3    gc ran out of time with expired sessions possibly left; run it again
  130  interrupted (Ctrl-C); gc finishes its batch in flight first
`;

/**
 * Runs one command line.
 *
 * @param argv The arguments after the program name.
 * @param env The environment, for `DATABASE_URL`.
 * @param out Standard output.
 * @param err Standard error, for failures.
 * @returns The exit code.
 */
export async function main(
  argv: string[],
  env: Record<string, string | undefined>,
  out: Output,
  err: Output,
): Promise<number> {
  let line: CommandLine;
  try {
    line = parseCommandLine(argv, env);
  } catch (error) {
    return fail(error, err);
  }
  if (line.command === "help") {
    out.write(HELP);
    return EXIT.OK;
  }
  if (line.command === "version") {
    out.write(`${VERSION}\n`);
    return EXIT.OK;
  }
  if (line.command === "dev-proxy") return await serveDevProxy(line, out, err);
  let connected;
  try {
    connected = await connect(line.url, line.connectTimeoutMs);
  } catch (error) {
    return fail(error, err);
  }
  const { client, where } = connected;
  const controller = new AbortController();
  const interrupt = (): void => {
    controller.abort();
    // A second Ctrl-C ends the process at once.
    process.off("SIGINT", interrupt);
  };
  process.on("SIGINT", interrupt);
  const what = {
    migrate: "migrate",
    gc: "collect expired sessions",
    stats: "read stats",
    sessions: "list sessions",
    revoke: "revoke sessions",
  }[line.command as "migrate" | "gc" | "stats" | "sessions" | "revoke"];
  try {
    switch (line.command) {
      case "migrate":
        return await migrate(client, line.table, out);
      case "gc":
        return await runGc(client, {
          table: line.table,
          batchSize: line.batchSize,
          maxDurationMs: line.maxDurationMs,
          signal: controller.signal,
        }, out);
      case "stats":
        return await stats(client, line.table, out);
      case "sessions":
        return await listSessions(client, line.table, line.user!, out);
      case "revoke":
        return await revokeSessions(client, line.table, line.user!, line.except, out);
    }
  } catch (error) {
    return fail(error instanceof CliError ? error : explain(error, what, where, line.table), err);
  } finally {
    process.off("SIGINT", interrupt);
    await client.end().catch(() => {});
  }
}

/** Runs the dev proxy until Ctrl-C or SIGTERM. */
async function serveDevProxy(line: CommandLine, out: Output, err: Output): Promise<number> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    return await runDevProxy({
      url: line.url,
      port: line.port,
      host: line.host,
      connectTimeoutMs: line.connectTimeoutMs,
      signal: controller.signal,
    }, out);
  } catch (error) {
    return fail(error, err);
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

/** Prints an expected failure as one line; anything else with its stack, as a bug. */
function fail(error: unknown, err: Output): number {
  if (error instanceof CliError) {
    err.write(`pgsession: ${error.message}\n`);
    return error.exitCode;
  }
  err.write(`pgsession: unexpected error: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  return EXIT.FAILED;
}
