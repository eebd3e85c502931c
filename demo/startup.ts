// Start-up failures of the demo as one line each, shared by demo/main.ts (Node) and demo/deno.ts.
// Someone trying the demo should read what to do, not a stack trace.

/** A start-up failure whose message is the whole story: printed alone, exit code 1. */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StartupError";
  }
}

/**
 * Why the server could not listen, from the error code both runtimes report (Node's
 * `error.code`; Deno's `AddrInUse`, `PermissionDenied`, `AddrNotAvailable` error names).
 */
export function listenFailure(error: unknown, host: string, port: number): StartupError {
  const { code, name, message } = error as { code?: string; name?: string; message?: string };
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const kind = code ?? name;
  const reason = kind === "EADDRINUSE" || kind === "AddrInUse"
    ? `the port is already in use; stop the other server or pick another port, e.g. PORT=${
      port === 8000 ? 8001 : 8000
    } (PORT=0: any free port)`
    : kind === "EACCES" || kind === "PermissionDenied"
    ? "permission denied; ports below 1024 need privileges, pick another with PORT"
    : kind === "EADDRNOTAVAIL" || kind === "AddrNotAvailable"
    ? "no such address on this machine; check HOST"
    : (message ?? String(error)).split("\n")[0]!;
  return new StartupError(`Cannot listen on ${where}: ${reason}`, { cause: error });
}

/** Prints a start-up failure: the message alone when it is expected, else with its stack. */
export function describeStartupFailure(error: unknown): string {
  if (error instanceof StartupError) return `pgsession demo: ${error.message}`;
  return `pgsession demo: cannot start: ${error instanceof Error ? error.stack ?? error.message : String(error)}`;
}
