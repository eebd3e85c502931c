/**
 * The command line of `pgsession`, parsed and checked before anything connects.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { quoteTable } from "../src/_sql.ts";
import { GC_DEFAULTS } from "../src/gc.ts";
import { CliError, EXIT, redact } from "./_fail.ts";

/** The commands `pgsession` knows. */
export type Command = "migrate" | "gc" | "stats" | "sessions" | "revoke";

/** A checked command line. */
export interface CommandLine {
  /** `"help"` for `--help` or `help`. */
  command: Command | "help";
  /** The connection URL, from `--url` or `DATABASE_URL`; empty for `help`. */
  url: string;
  /** The session table, optionally schema-qualified. */
  table: string;
  /** `gc --batch-size`. */
  batchSize: number;
  /** `gc --max-duration`, in milliseconds; `Infinity` for `none`. */
  maxDurationMs: number;
  /** `sessions --user`, `revoke --user`: the user id. */
  user?: string;
  /** `revoke --except`: the handle of the session to keep. */
  except?: string;
}

const COMMANDS: readonly string[] = ["migrate", "gc", "stats", "sessions", "revoke"];
const MAX_BATCH_SIZE = 100_000;

/**
 * Parses and checks the arguments.
 *
 * @param argv The arguments after the program name.
 * @param env The environment, for `DATABASE_URL`.
 * @throws {CliError} With exit code 2 for anything wrong on the command line.
 */
export function parseCommandLine(argv: string[], env: Record<string, string | undefined>): CommandLine {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        url: { type: "string" },
        table: { type: "string" },
        "batch-size": { type: "string" },
        "max-duration": { type: "string" },
        user: { type: "string" },
        except: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new CliError(`${usageProblem(error as Error & { code?: string })}; see \`pgsession --help\``, EXIT.USAGE, { cause: error });
  }
  const { values, positionals } = parsed;
  const line: CommandLine = {
    command: "help",
    url: "",
    table: values.table ?? "session",
    batchSize: GC_DEFAULTS.batchSize,
    maxDurationMs: GC_DEFAULTS.maxDurationMs,
  };
  if (values.help || positionals[0] === "help") return line;
  const [command, ...extra] = positionals;
  if (command === undefined) throw new CliError("Cannot run pgsession: no command given; see `pgsession --help`", EXIT.USAGE);
  if (!COMMANDS.includes(command)) {
    throw new CliError(`Cannot run unknown command: ${command}; expected one of ${COMMANDS.join(", ")}`, EXIT.USAGE);
  }
  if (extra.length) throw new CliError(`Cannot use extra argument: ${extra[0]}`, EXIT.USAGE);
  line.command = command as Command;

  if (command !== "gc") {
    for (const flag of ["batch-size", "max-duration"] as const) {
      if (values[flag] !== undefined) throw new CliError(`Cannot use --${flag} with ${command}: it is an option of gc`, EXIT.USAGE);
    }
  }
  checkUserOptions(command, values, line);
  if (values["batch-size"] !== undefined) {
    const n = Number(values["batch-size"]);
    if (!Number.isSafeInteger(n) || n < 1 || n > MAX_BATCH_SIZE) {
      throw new CliError(`Cannot use --batch-size ${values["batch-size"]}: expected a whole number from 1 to ${MAX_BATCH_SIZE}`, EXIT.USAGE);
    }
    line.batchSize = n;
  }
  if (values["max-duration"] !== undefined) {
    const text = values["max-duration"];
    const seconds = text === "none" ? Infinity : text.trim() === "" ? NaN : Number(text);
    if (Number.isNaN(seconds) || seconds < 0) {
      throw new CliError(`Cannot use --max-duration ${text}: expected seconds, 0 or more, or "none"`, EXIT.USAGE);
    }
    line.maxDurationMs = seconds * 1000;
  }

  try {
    quoteTable(line.table);
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.USAGE, { cause: error });
  }

  const url = values.url ?? env.DATABASE_URL;
  if (!url) throw new CliError("Cannot connect: no database URL; set DATABASE_URL or pass --url", EXIT.USAGE);
  let parsedUrl: URL | undefined;
  try {
    parsedUrl = new URL(url);
  } catch {
    // reported below
  }
  if (!parsedUrl || !/^postgres(ql)?:$/.test(parsedUrl.protocol)) {
    const source = values.url !== undefined ? "--url" : "DATABASE_URL";
    throw new CliError(`Cannot connect: ${source} is not a postgres://user@host/database URL: ${redact(url)}`, EXIT.USAGE);
  }
  line.url = url;
  return line;
}

/** `--user` belongs to sessions and revoke, which need it; `--except` to revoke. */
const MAX_USER_LENGTH = 1024;

function checkUserOptions(command: string, values: { user?: string; except?: string }, line: CommandLine): void {
  const users = command === "sessions" || command === "revoke";
  if (!users && values.user !== undefined) throw new CliError(`Cannot use --user with ${command}: it is an option of sessions and revoke`, EXIT.USAGE);
  if (command !== "revoke" && values.except !== undefined) throw new CliError(`Cannot use --except with ${command}: it is an option of revoke`, EXIT.USAGE);
  if (!users) return;
  if (values.user === undefined || values.user === "") throw new CliError(`Cannot run ${command}: it needs --user ID, the user id the application bound at sign-in`, EXIT.USAGE);
  if (values.user.length > MAX_USER_LENGTH) throw new CliError(`Cannot use --user: it is ${values.user.length} characters, over the ${MAX_USER_LENGTH}-character limit of user ids`, EXIT.USAGE);
  if (values.except === "") throw new CliError("Cannot use --except with an empty value: expected a handle from `pgsession sessions`", EXIT.USAGE);
  line.user = values.user;
  line.except = values.except;
}

/** Node's parseArgs messages, shortened to ours. */
function usageProblem(error: Error & { code?: string }): string {
  const option = /'(?:-\w, )?(-[^' ]+)/.exec(error.message)?.[1] ?? "";
  switch (error.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `Cannot use unknown option: ${option}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return `Cannot use option ${option}: ${/argument missing/.test(error.message) ? "it needs a value" : "it takes no value"}`;
    default:
      return `Cannot read the command line: ${error.message.split("\n")[0]}`;
  }
}
