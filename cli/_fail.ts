/**
 * Expected failures of the command-line tool: a message for people and an exit code, never a
 * stack trace.
 *
 * @module
 */

/** The exit codes of `pgsession`, also listed in `--help`. */
export const EXIT = Object.freeze({
  /** The command did everything it had to. */
  OK: 0,
  /** The database failed or could not be reached, or the table is missing. */
  FAILED: 1,
  /**
   * Usage or set-up to fix before running again: an unknown command or option, a bad value, no or
   * a bad URL, a handle that names none of the user's sessions, a table of that name that is not
   * pgsession's, an optional package (`pg`, `ws`) not installed.
   */
  USAGE: 2,
  /** `gc` spent its time budget with expired rows possibly left: run it again. */
  MORE_LEFT: 3,
  /** Interrupted (Ctrl-C); `gc` finished its batch in flight first. */
  INTERRUPTED: 130,
});

/** A failure the tool expected; printed as its message alone. */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: number;

  /**
   * @param message Sentence case, no trailing period, with the offending value.
   * @param exitCode One of {@linkcode EXIT}.
   */
  constructor(message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.exitCode = exitCode;
    this.name = this.constructor.name;
  }
}

/** Hides the password of a connection URL, even one that does not parse. */
export function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@/]*@/i, "$1***@");
}

interface DriverError {
  code?: string;
  message?: string;
  errors?: DriverError[];
}

/**
 * Turns a driver or server error into a message for people.
 *
 * @param error What was thrown, possibly a `SessionError` with the driver's error as `cause`.
 * @param what Completes "Cannot …", e.g. `"read stats"`.
 * @param where `host:port` of the server, for connection failures.
 * @param table The table the command works on, for a missing-table hint.
 */
export function explain(error: unknown, what: string, where: string, table: string): CliError {
  let driver = error as DriverError;
  // A SessionError wraps the driver's error; Node's happy eyeballs wrap one error per address.
  if (error instanceof Error && error.name === "SessionError" && error.cause) driver = error.cause as DriverError;
  const code = driver?.code ?? driver?.errors?.[0]?.code;
  const reason = (driver?.message || driver?.errors?.[0]?.message || String(error)).split("\n")[0];
  const tableFlag = table === "session" ? "" : ` --table ${table}`;
  switch (code) {
    case "ECONNREFUSED":
      return new CliError(`Cannot connect to ${where}: connection refused; is PostgreSQL running there?`, EXIT.FAILED, {
        cause: error,
      });
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new CliError(`Cannot connect to ${where}: host not found`, EXIT.FAILED, { cause: error });
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new CliError(`Cannot connect to ${where}: ${reason}`, EXIT.FAILED, { cause: error });
    case "42P01": // undefined_table
    case "3F000": // invalid_schema_name
      return new CliError(
        `Cannot ${what}: table ${
          JSON.stringify(table)
        } does not exist; create it with \`pgsession migrate${tableFlag}\``,
        EXIT.FAILED,
        { cause: error },
      );
    case "42703": // undefined_column
      return new CliError(
        `Cannot ${what}: table ${JSON.stringify(table)} is not a session table (${reason}); if another library ` +
          "made it, give pgsession a table of its own with `pgsession migrate --table <another name>`",
        EXIT.FAILED,
        { cause: error },
      );
  }
  if (/timeout/i.test(reason)) {
    return new CliError(`Cannot connect to ${where}: ${reason}`, EXIT.FAILED, { cause: error });
  }
  return new CliError(`Cannot ${what}: ${reason}`, EXIT.FAILED, { cause: error });
}
