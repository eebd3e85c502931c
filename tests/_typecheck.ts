// Compile-time checks of withSession's signature, type-checked by `npm test` (deno check), never
// run: each line is a way users wrap handlers on a platform, and must keep compiling.
import { PostgresStore, type SessionData, withSession } from "../mod.ts";

interface Env {
  DATABASE_URL: string;
  SESSION_SECRET: string;
}
interface Ctx {
  waitUntil(promise: Promise<unknown>): void;
}
declare const store: PostgresStore;
const env: Env = { DATABASE_URL: "", SESSION_SECRET: "" };
const ctx: Ctx = { waitUntil() {} };

// Workers: the handler ignores env/ctx; the options function reads them (the README's example).
const workers = withSession(
  async (_req, session) => {
    session.set("visits", 1);
    return new Response("ok");
  },
  (_req, e: Env, c: Ctx) => ({
    store: { connectionString: e.DATABASE_URL },
    secrets: [e.SESSION_SECRET],
    waitUntil: c.waitUntil.bind(c),
  }),
);
export const a: Promise<Response> = workers(new Request("https://x/"), env, ctx);

// The handler takes the platform's arguments; the options are a plain object.
const handlerRest = withSession(async (_req, _session, e: Env) => new Response(e.DATABASE_URL), { store });
export const b: Promise<Response> = handlerRest(new Request("https://x/"), env);

// Both declare them; explicit type arguments.
const explicit = withSession<SessionData, [Env, Ctx]>(
  (_req, _session, e, c) => (c.waitUntil(Promise.resolve()), new Response(e.SESSION_SECRET)),
  (_req, _e, c) => ({ store, waitUntil: c.waitUntil }),
);
export const c: Promise<Response> = explicit(new Request("https://x/"), env, ctx);

// Deno.serve / Node: nothing extra.
const plain = withSession(() => new Response("x"), { store });
export const d: Promise<Response> = plain(new Request("https://x/"));

// Typed session data as an `interface` (no index signature) as well as a `type`, without casts.
interface User {
  name: string;
  visits: number;
}
declare const client: { query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }> };
const users = new PostgresStore<User>({ client });
const typed = withSession<User>(async (_req, session) => {
  const visits: number = ((await session.get("visits")) ?? 0) + 1;
  session.set("visits", visits);
  // @ts-expect-error: a key the interface does not have
  session.set("nope", 1);
  return new Response(`${await session.get("name")} ${visits}`);
}, { store: users });
export const e: Promise<Response> = typed(new Request("https://x/"));
