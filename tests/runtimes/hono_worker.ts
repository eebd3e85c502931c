// A Hono app as a Cloudflare module Worker, built ONCE at module scope as users write it:
// `export default app`. The session middleware gets its options from the bindings (c.env) and
// commits plain updates in c.executionCtx.waitUntil. Bundled by tests/runtimes/bundle.ts and run
// in workerd by Miniflare (tests/hono.test.ts). With a SNAPSHOT_MAX_AGE binding the same app
// reads sessions from snapshots, with the default cookie (`__Host-session`, Secure).
import { neon, neonConfig } from "@neondatabase/serverless";
import { Hono } from "hono";
import { type SessionEnv, sessionMiddleware } from "../../src/hono.ts";
import { addRoutes, type AppData } from "./hono_app.ts";

interface Bindings {
  SUPPORT_PORT: string;
  DATABASE_URL: string;
  SESSION_TABLE: string;
  SESSION_SECRET: string;
  SNAPSHOT_MAX_AGE?: string;
}

// How many times the options function ran: once per bindings object, not per request.
let builds: number = 0;

const app = new Hono<{ Bindings: Bindings } & SessionEnv<AppData>>();

// Test wiring for the local stand-in of Neon; a real deployment sets none of this.
app.use(async (c, next) => {
  neonConfig.fetchEndpoint = `http://127.0.0.1:${c.env.SUPPORT_PORT}/sql`;
  await next();
});
app.get("/__builds", (c) => c.json({ builds }));

app.use(sessionMiddleware<AppData, { Bindings: Bindings }>((c) => {
  builds++;
  const store = { sql: neon(c.env.DATABASE_URL), table: c.env.SESSION_TABLE };
  if (c.env.SNAPSHOT_MAX_AGE) {
    return { store, secrets: [c.env.SESSION_SECRET], snapshot: { maxAge: Number(c.env.SNAPSHOT_MAX_AGE) } };
  }
  return { store, secrets: [c.env.SESSION_SECRET], cookie: { secure: false } };
}));
// A request that reads (and with ?write=1 changes) the session, then waits at a gate the test
// holds, so another request can sign in while this one is in flight.
app.get("/late", async (c) => {
  const visits: number = (await c.var.session.get("visits")) ?? 0;
  if (c.req.query("write") === "1") c.var.session.set("visits", visits + 1);
  await (await fetch(c.req.query("gate")!)).text();
  return c.json({ visits });
});
addRoutes(app);

export default app;
