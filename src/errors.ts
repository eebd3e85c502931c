/**
 * The one error class pgsession throws for server-side failures.
 *
 * @module
 */

/**
 * What went wrong, for callers to `switch` on.
 *
 * - `DATABASE_ERROR`: the database or the driver failed; the driver's error is the `cause`.
 * - `DATA_TOO_LARGE`: the encoded session is over `maxDataBytes`; nothing was written.
 * - `UNENCODABLE_DATA`: a value cannot be stored (a function, a symbol, a cycle); nothing was written.
 * - `TIMEOUT`: the database did not answer within the store's `timeoutMs` (a stalled connection, a
 *   row locked by another transaction); the message says how long it waited. Nothing was half
 *   written: each statement is atomic.
 * - `ABORTED`: the request was aborted (the client went away); pending session work was dropped.
 * - `CONFLICT`: concurrent writers kept changing the session for the whole `timeoutMs` budget.
 * - `CONFIG`: the options are unusable (a short secret, a cookie a browser would refuse), reported
 *   when they are read.
 * - `MIGRATION_REQUIRED`: the table lacks a column this feature needs; run `npx pgsession migrate`.
 * - `TABLE_MISSING`: the session table does not exist; create it with `npx pgsession migrate --table <name>`
 *   (or the statements of `schema.sql`).
 */
export type SessionErrorCode =
  | "DATABASE_ERROR"
  | "DATA_TOO_LARGE"
  | "UNENCODABLE_DATA"
  | "TIMEOUT"
  | "ABORTED"
  | "CONFLICT"
  | "CONFIG"
  | "MIGRATION_REQUIRED"
  | "TABLE_MISSING";

/**
 * Where pgsession reports what it recovered from without failing the request: corrupt stored data
 * read as empty, an idle database connection lost, prepared statements given up behind a pooler, a
 * background commit that failed. `console` fits.
 *
 * @example Collect warnings in a structured log
 * ```ts
 * import type { Logger } from "pgsession";
 *
 * const lines: string[] = [];
 * const logger: Logger = {
 *   warn: (message, details) => void lines.push(JSON.stringify({ level: "warn", message, ...details })),
 * };
 * logger.warn("Session data is corrupt and was read as empty", { handle: "3f9a…" });
 * console.assert(lines.length === 1);
 * ```
 */
export interface Logger {
  /**
   * Called with a message and details; never with a raw session id.
   *
   * @param message What happened and what was done about it, sentence case.
   * @param details Values that help find the cause (a reason, a shortened handle).
   */
  warn(message: string, details?: Record<string, unknown>): void;
}

/**
 * A server-side session failure. Bad client input (a malformed, forged or expired cookie) is never
 * an error: it yields a fresh session instead.
 *
 * @example Tell a database outage from a bug
 * ```ts
 * import { SessionError } from "pgsession";
 *
 * const err = new SessionError("DATABASE_ERROR", "Cannot read session", { cause: new Error("ECONNREFUSED") });
 * if (err instanceof SessionError && err.code === "DATABASE_ERROR") {
 *   console.assert(err.cause instanceof Error);
 * }
 * ```
 */
export class SessionError extends Error {
  /** A stable code; the message is for people and may change. */
  readonly code: SessionErrorCode;

  /**
   * Makes an error with a stable code.
   *
   * @param code What went wrong.
   * @param message Sentence case, no trailing period, with the offending value.
   * @param options `cause`: the underlying error, e.g. the driver's.
   */
  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = this.constructor.name;
  }
}
