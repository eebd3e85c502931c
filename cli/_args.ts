/**
 * The command line of `pgsession`, parsed and checked before anything connects: one
 * `node:util` `parseArgs` call per command, with that command's options only.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { quoteTable } from "../src/_sql.ts";
import { GC_DEFAULTS, MAX_BATCH_SIZE } from "../src/gc.ts";
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

/** Long enough for a cold serverless database to wake up. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** The port of `pgsession dev-proxy` unless `--port` says otherwise. */
export const DEV_PROXY_PORT = 4444;
/** The longest user id the store accepts. */
const MAX_USER_LENGTH = 1024;

const TEXT = { type: "string" } as const;
const EVERY_COMMAND = {
  url: TEXT,
  "connect-timeout": TEXT,
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;
const ON_A_TABLE = { ...EVERY_COMMAND, table: TEXT } as const;

/** Each command's options: what `parseArgs` accepts for it, and nothing else. */
const OPTIONS = {
  migrate: ON_A_TABLE,
  gc: { ...ON_A_TABLE, "batch-size": TEXT, "max-duration": TEXT },
  stats: ON_A_TABLE,
  sessions: { ...ON_A_TABLE, user: TEXT },
  revoke: { ...ON_A_TABLE, user: TEXT, except: TEXT },
  "dev-proxy": { ...EVERY_COMMAND, database: TEXT, port: TEXT, host: TEXT },
} as const;
const COMMANDS = Object.keys(OPTIONS) as Command[];

/** The values of any command's options, as `parseArgs` returns them. */
interface Values {
  help?: boolean;
  version?: boolean;
  url?: string;
  table?: string;
  "batch-size"?: string;
  "max-duration"?: string;
  user?: string;
  except?: string;
  "connect-timeout"?: string;
  database?: string;
  port?: string;
  host?: string;
}

/**
 * Parses and checks the arguments.
 *
 * @param argv The arguments after the program name: `<command> [options]`.
 * @param env The environment, for `DATABASE_URL`.
 * @throws {CliError} With exit code 2 for anything wrong on the command line.
 */
export function parseCommandLine(argv: string[], env: Record<string, string | undefined>): CommandLine {
  const line: CommandLine = {
    command: "help",
    url: "",
    table: "session",
    batchSize: GC_DEFAULTS.batchSize,
    maxDurationMs: GC_DEFAULTS.maxDurationMs,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    port: DEV_PROXY_PORT,
    host: "127.0.0.1",
  };
  const [first, ...rest] = argv;
  if (first === undefined) {
    throw new CliError("Cannot run pgsession: no command given; see `pgsession --help`", EXIT.USAGE);
  }
  if (first === "help" || first === "--help" || first === "-h") return line;
  if (first === "version" || first === "--version" || first === "-v") return { ...line, command: "version" };
  if (!(COMMANDS as string[]).includes(first)) {
    const expected = `write pgsession <command> [options], the command one of ${COMMANDS.join(", ")}`;
    if (first.startsWith("-")) throw new CliError(`Cannot use ${first} before the command: ${expected}`, EXIT.USAGE);
    const guess = closest(first, COMMANDS);
    throw new CliError(
      `Cannot run unknown command: ${first}; ${guess ? `did you mean ${guess}? ` : ""}${expected}`,
      EXIT.USAGE,
    );
  }
  const command = first as Command;
  let values: Values;
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: rest, options: OPTIONS[command], strict: true, allowPositionals: true });
    [values, positionals] = [parsed.values as Values, parsed.positionals];
  } catch (error) {
    throw usageError(error as Error & { code?: string }, command, rest);
  }
  if (values.help) return line;
  if (values.version) return { ...line, command: "version" };
  if (positionals.length) throw new CliError(`Cannot use extra argument: ${positionals[0]}`, EXIT.USAGE);
  line.command = command;
  line.table = values.table ?? line.table;

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
  if (command === "sessions" || command === "revoke") {
    if (!values.user) {
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
  const source = values.url !== undefined || values.database !== undefined ? flag : "DATABASE_URL";
  let parsedUrl: URL | undefined;
  try {
    parsedUrl = new URL(url);
  } catch {
    // reported below
  }
  if (!parsedUrl || !/^postgres(ql)?:$/.test(parsedUrl.protocol)) {
    throw new CliError(
      `Cannot connect: ${source} is not a postgres://user@host/database URL: ${redact(url)}`,
      EXIT.USAGE,
    );
  }
  if (command === "dev-proxy" && !isLoopbackHost(whereHost(parsedUrl))) {
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
 * A `parseArgs` failure as one line. An unknown option is named with the command it belongs to,
 * or the nearest option of this command; Node's own message serves for the rest (a missing
 * value, a value given to a flag).
 */
function usageError(error: Error & { code?: string }, command: Command, args: string[]): CliError {
  const options = OPTIONS[command] as Record<string, { type: string; short?: string }>;
  const unknown = error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? firstUnknownOption(args, options) : undefined;
  if (unknown !== undefined) {
    const owners = COMMANDS.filter((c) => unknown in OPTIONS[c]);
    if (owners.length) {
      const list = owners.length === 1 ? owners[0] : `${owners.slice(0, -1).join(", ")} and ${owners.at(-1)}`;
      return new CliError(`Cannot use --${unknown} with ${command}: it is an option of ${list}`, EXIT.USAGE, {
        cause: error,
      });
    }
    const guess = closest(unknown, Object.keys(options));
    const shown = unknown.length === 1 ? `-${unknown}` : `--${unknown}`;
    return new CliError(
      `Cannot use unknown option: ${shown}${guess ? `; did you mean --${guess}?` : ""} (see \`pgsession --help\`)`,
      EXIT.USAGE,
      { cause: error },
    );
  }
  // Node's messages are sentences over several lines; ours are one line.
  const message = error.message.replace(/\s*\n\s*/g, " ").replace(/\.$/, "");
  return new CliError(`Cannot read the command line: ${message}`, EXIT.USAGE, { cause: error });
}

/** The name of the first option in `args` the command does not have (`-x` → `x`). */
function firstUnknownOption(
  args: string[],
  options: Record<string, { type: string; short?: string }>,
): string | undefined {
  const shorts = new Set(Object.values(options).map((o) => o.short));
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return undefined;
    if (arg.startsWith("--")) {
      const name = arg.slice(2).split("=")[0]!;
      if (!(name in options)) return name;
      if (options[name]!.type === "string" && !arg.includes("=")) i++;
    } else if (arg.startsWith("-") && arg.length > 1) {
      for (const letter of arg.slice(1)) if (!shorts.has(letter)) return letter;
    }
  }
  return undefined;
}

/** The candidate nearest to a mistyped word, if it is near enough to be what was meant. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
