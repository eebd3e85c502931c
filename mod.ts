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
export { withSession } from "./src/middleware.ts";
export type { PlatformArgs, SessionHandler, WithSessionOptions } from "./src/middleware.ts";
export { PostgresStore } from "./src/store.ts";
export type { StoreOptions } from "./src/store.ts";
export type { RegenerateOptions, SaveResult, Session, SessionData, UserSession } from "./src/session.ts";
export type { Connection, NeonSql, QueryClient } from "./src/client.ts";
export { SessionError } from "./src/errors.ts";
export type { Logger, SessionErrorCode } from "./src/errors.ts";
export { schemaSql } from "./src/schema.ts";
export type { GcOptions, GcProgress, GcResult } from "./src/gc.ts";
export type { CookieOptions } from "./src/cookie.ts";
