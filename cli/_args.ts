/**
 * The command line of `pgsession`, parsed and checked before anything connects.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { quoteTable } from "../src/_sql.ts";
import { GC_DEFAULTS } from "../src/gc.ts";
import { isLoopbackHost } from "./dev_proxy/loopback.ts";
import { CliError, EXIT, redact } from "./_fail.ts";

/** The commands `pgsession` knows. */
export type Command = "migrate" | "gc" | "stats" | "sessions" | "revoke" | "dev-proxy";

/** A checked command line. */
export interface CommandLine {
  /** `"help"` for `--help` or `help`, `"version"` for `--version`. */
  command: Command | "help" | "version";
  /** The connection URL, from `--url` (or `--database`) or `DATABASE_URL`; empty for help and version. */
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
  /** `--connect-timeout`, in milliseconds. */
  connectTimeoutMs: number;
  /** `dev-proxy --port`. */
  port: number;
  /** `dev-proxy --host`. */
  host: string;
}

const COMMANDS: readonly string[] = ["migrate", "gc", "stats", "sessions", "revoke", "dev-proxy"];
const MAX_BATCH_SIZE = 100_000;
/** Long enough for a cold serverless database to wake up. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** The port of `pgsession dev-proxy` unless `--port` says otherwise. */
export const DEV_PROXY_PORT = 4444;
const STRING_OPTIONS = [
  "url",
  "database",
  "table",
  "batch-size",
  "max-duration",
  "user",
  "except",
  "connect-timeout",
  "port",
  "host",
] as const;
/** Options that belong to one command only. */
const OWNER: Record<string, Command> = {
  "batch-size": "gc",
  "max-duration": "gc",
  port: "dev-proxy",
  host: "dev-proxy",
  database: "dev-proxy",
};

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
      args: joinNegativeValues(argv),
      allowPositionals: true,
      strict: true,
      options: {
        ...Object.fromEntries(STRING_OPTIONS.map((name) => [name, { type: "string" as const }])),
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
      },
    });
  } catch (error) {
    throw new CliError(`${usageProblem(error as Error & { code?: string })}; see \`pgsession --help\``, EXIT.USAGE, {
      cause: error,
    });
  }
  const { positionals } = parsed;
  const values = parsed.values as Partial<Record<(typeof STRING_OPTIONS)[number], string>> & {
    help?: boolean;
    version?: boolean;
  };
  const line: CommandLine = {
    command: "help",
    url: "",
    table: values.table ?? "session",
    batchSize: GC_DEFAULTS.batchSize,
    maxDurationMs: GC_DEFAULTS.maxDurationMs,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    port: DEV_PROXY_PORT,
    host: "127.0.0.1",
  };
  if (values.help || positionals[0] === "help") return line;
  if (values.version || positionals[0] === "version") return { ...line, command: "version" };
  const [command, ...extra] = positionals;
  if (command === undefined) {
    throw new CliError("Cannot run pgsession: no command given; see `pgsession --help`", EXIT.USAGE);
  }
  if (!COMMANDS.includes(command)) {
    throw new CliError(`Cannot run unknown command: ${command}; expected one of ${COMMANDS.join(", ")}`, EXIT.USAGE);
  }
  if (extra.length) throw new CliError(`Cannot use extra argument: ${extra[0]}`, EXIT.USAGE);
  line.command = command as Command;

  for (const [flag, owner] of Object.entries(OWNER)) {
    if (owner !== command && values[flag as keyof typeof values] !== undefined) {
      throw new CliError(`Cannot use --${flag} with ${command}: it is an option of ${owner}`, EXIT.USAGE);
    }
  }
  checkUserOptions(command, values, line);
  if (command === "dev-proxy" && values.table !== undefined) {
    throw new CliError("Cannot use --table with dev-proxy: it relays any SQL", EXIT.USAGE);
  }
  if (values["batch-size"] !== undefined) {
    const n = Number(values["batch-size"]);
    if (!Number.isSafeInteger(n) || n < 1 || n > MAX_BATCH_SIZE) {
      throw new CliError(
        `Cannot use --batch-size ${values["batch-size"]}: expected a whole number from 1 to ${MAX_BATCH_SIZE}`,
        EXIT.USAGE,
      );
    }
    line.batchSize = n;
  }
  if (values["max-duration"] !== undefined) {
    const text = values["max-duration"];
    const seconds = text === "none" ? Infinity : text.trim() === "" ? NaN : Number(text);
    if (Number.isNaN(seconds)) {
      throw new CliError(`Cannot use --max-duration ${text}: expected seconds, 0 or more, or "none"`, EXIT.USAGE);
    }
    if (seconds < 0) {
      throw new CliError(
        `Cannot use --max-duration ${text}: out of range; expected seconds, 0 or more, or "none"`,
        EXIT.USAGE,
      );
    }
    line.maxDurationMs = seconds * 1000;
  }
  if (values["connect-timeout"] !== undefined) {
    const text = values["connect-timeout"];
    const seconds = text.trim() === "" ? NaN : Number(text);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
      throw new CliError(
        `Cannot use --connect-timeout ${text}: ${
          Number.isNaN(seconds) ? "not a number" : "out of range"
        }; expected seconds, more than 0, at most 3600`,
        EXIT.USAGE,
      );
    }
    line.connectTimeoutMs = seconds * 1000;
  }
  if (values.port !== undefined) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65_535 || values.port.trim() === "") {
      throw new CliError(
        `Cannot use --port ${values.port}: expected a port number from 0 to 65535 (0: any free port)`,
        EXIT.USAGE,
      );
    }
    line.port = port;
  }
  if (values.host !== undefined) {
    if (!/^[A-Za-z0-9.:\-\[\]]+$/.test(values.host)) {
      throw new CliError(`Cannot use --host ${values.host}: expected an address or host name`, EXIT.USAGE);
    }
    line.host = values.host.replace(/^\[(.*)\]$/, "$1");
  }
  if (values.database !== undefined && values.url !== undefined) {
    throw new CliError("Cannot use both --database and --url: they name the same thing", EXIT.USAGE);
  }

  try {
    quoteTable(line.table);
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.USAGE, { cause: error });
  }

  const flag = values.database !== undefined ? "--database" : "--url";
  const url = values.database ?? values.url ?? env.DATABASE_URL;
  if (!url) {
    throw new CliError(
      `Cannot connect: no database URL; set DATABASE_URL or pass ${command === "dev-proxy" ? "--database" : "--url"}`,
      EXIT.USAGE,
    );
  }
  let parsedUrl: URL | undefined;
  try {
    parsedUrl = new URL(url);
  } catch {
    // reported below
  }
  if (!parsedUrl || !/^postgres(ql)?:$/.test(parsedUrl.protocol)) {
    const source = values.url !== undefined || values.database !== undefined ? flag : "DATABASE_URL";
    throw new CliError(
      `Cannot connect: ${source} is not a postgres://user@host/database URL: ${redact(url)}`,
      EXIT.USAGE,
    );
  }
  if (command === "dev-proxy" && !isLoopbackHost(whereHost(parsedUrl))) {
    const source = values.url !== undefined || values.database !== undefined ? flag : "DATABASE_URL";
    throw new CliError(
      `Cannot relay to ${whereHost(parsedUrl)}: dev-proxy serves only a PostgreSQL on this machine (${source} is ${
        redact(url)
      })`,
      EXIT.USAGE,
    );
  }
  line.url = url;
  return line;
}

/** The host a postgres URL connects to, `host` query parameter included (a Unix socket path). */
function whereHost(url: URL): string {
  return url.hostname || url.searchParams.get("host") || "localhost";
}

/**
 * `--max-duration -1` as `--max-duration=-1`: Node's parseArgs takes a value that starts with a
 * dash for an option, and its complaint would hide the real problem (a value out of range).
 */
function joinNegativeValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (
      /^--[a-z-]+$/.test(arg) && (STRING_OPTIONS as readonly string[]).includes(arg.slice(2)) && next !== undefined &&
      /^-[\d.]/.test(next)
    ) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** `--user` belongs to sessions and revoke, which need it; `--except` to revoke. */
const MAX_USER_LENGTH = 1024;

function checkUserOptions(command: string, values: { user?: string; except?: string }, line: CommandLine): void {
  const users = command === "sessions" || command === "revoke";
  if (!users && values.user !== undefined) {
    throw new CliError(`Cannot use --user with ${command}: it is an option of sessions and revoke`, EXIT.USAGE);
  }
  if (command !== "revoke" && values.except !== undefined) {
    throw new CliError(`Cannot use --except with ${command}: it is an option of revoke`, EXIT.USAGE);
  }
  if (!users) return;
  if (values.user === undefined || values.user === "") {
    throw new CliError(
      `Cannot run ${command}: it needs --user ID, the user id the application bound at sign-in`,
      EXIT.USAGE,
    );
  }
  if (values.user.length > MAX_USER_LENGTH) {
    throw new CliError(
      `Cannot use --user: it is ${values.user.length} characters, over the ${MAX_USER_LENGTH}-character limit of user ids`,
      EXIT.USAGE,
    );
  }
  if (values.except === "") {
    throw new CliError(
      "Cannot use --except with an empty value: expected a handle from `pgsession sessions`",
      EXIT.USAGE,
    );
  }
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
      return /argument missing|ambiguous/.test(error.message)
        ? `Cannot use option ${option}: it needs a value (write ${option}=VALUE for a value that starts with -)`
        : `Cannot use option ${option}: it takes no value`;
    default:
      return `Cannot read the command line: ${error.message.split("\n")[0]}`;
  }
}
