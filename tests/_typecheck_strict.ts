// Compile-time check, never run: with `exactOptionalPropertyTypes` (what `tsc --init` turns on), every
// optional option accepts `undefined`, as values read from an environment usually are. Checked by
// `npm test` with deno.strict.json.
import {
  createSessions,
  type GcOptions,
  PostgresStore,
  type RegenerateOptions,
  type Sessions,
  withSession,
} from "../mod.ts";
import { sessionMiddleware as honoSessions } from "../src/hono.ts";
import { sessionMiddleware as expressSessions } from "../src/express.ts";
import { createPostgresSessionStorage } from "../src/react_router.ts";

declare const maybe: string | undefined;
declare const maybeNumber: number | undefined;
declare const maybeBool: boolean | undefined;
declare const pool: { query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }> };

const store = new PostgresStore({
  client: pool,
  prepare: maybeBool,
  table: maybe,
  ttl: maybeNumber,
  absoluteTtl: maybeNumber,
  touchAfter: maybeNumber,
  maxDataBytes: maybeNumber,
  timeoutMs: maybeNumber,
  logger: undefined,
});
export const http: PostgresStore = new PostgresStore({
  connectionString: "postgres://u@x.neon.tech/db",
  fetchEndpoint: maybe,
});
export const sessions: Sessions = createSessions({
  store,
  secrets: maybe === undefined ? undefined : [maybe],
  cookie: {
    name: maybe,
    domain: maybe,
    path: maybe,
    sameSite: undefined,
    secure: maybeBool,
    httpOnly: maybeBool,
    partitioned: maybeBool,
  },
  header: maybe,
  trustProxy: maybeBool,
  commitOnServerError: maybeBool,
  logger: undefined,
  snapshot: undefined,
  legacy: undefined,
});
export const wrapped: (request: Request) => Promise<Response> = withSession(() => new Response("ok"), {
  store,
  waitUntil: undefined,
  release: undefined,
  onError: undefined,
});
export const gc: GcOptions = {
  batchSize: maybeNumber,
  maxDurationMs: maybeNumber,
  signal: undefined,
  onBatch: undefined,
};
export const regenerate: RegenerateOptions = { restart: maybeBool, user: maybe, label: maybe };
export const hono: unknown = honoSessions({ store }, { background: maybeBool });
export const express: unknown = expressSessions({ store });
export const rr: unknown = createPostgresSessionStorage({ store, cookie: undefined });
