/**
 * pgsession: server-side HTTP sessions stored in PostgreSQL, for fetch handlers on Cloudflare
 * Workers, Vercel Edge, Deno and Node, over Neon's serverless driver.
 *
 * Tokens are 256-bit, only their SHA-256 is stored, data is CBOR in a `bytea` column, expiry
 * follows the database clock, and every store operation is one SQL statement.
 *
 * @example
 * ```ts ignore
 * import { PostgresStore } from "pgsession";
 *
 * const store = new PostgresStore({ connectionString: "postgres://user:password@ep-example-123.us-east-2.aws.neon.tech/db" });
 * const session = store.create();
 * session.set("user", "ada");
 * await store.save(session);
 * const same = await store.read(session.id);
 * console.log(await same?.get("user")); // "ada"
 * ```
 *
 * @module
 */

export { createSessions } from "./src/sessions.ts";
export type { CommitOptions, RequestSession, Sessions, SessionsOptions } from "./src/sessions.ts";
export type { LegacyOptions } from "./src/_legacy.ts";
export { withSession } from "./src/middleware.ts";
export type { PlatformArgs, SessionHandler, WithSessionOptions } from "./src/middleware.ts";
export { PostgresStore, STORE_DEFAULTS } from "./src/store.ts";
export type {
  CommitPlan,
  CookieValue,
  Logger,
  PostgresStoreOptions,
  ResolvedStoreOptions,
  SaveResult,
  StoreOptions,
} from "./src/store.ts";
export { Changes, FlashUpdate, Session } from "./src/session.ts";
export type { RegenerateOptions, SessionData, SessionHost, UserSession } from "./src/session.ts";
export type { Connection, NeonSql, QueryClient, Row } from "./src/client.ts";
export { SessionError } from "./src/errors.ts";
export type { SessionErrorCode } from "./src/errors.ts";
export { generateToken, hashToken, isToken } from "./src/token.ts";
export { schemaSql } from "./src/schema.ts";
export { gc, GC_DEFAULTS } from "./src/gc.ts";
export type { GcOptions, GcProgress, GcResult, GcTarget } from "./src/gc.ts";
export type { CookieOptions } from "./src/cookie.ts";
