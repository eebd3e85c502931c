// Hono: the pgsession/hono middleware puts a typed session on the context (`c.var.session`) and
// commits it after the route. Build the app once; it runs wherever Hono runs:
//   Workers: worker.ts next to this file (`export default createApp((c) => options from c.env)`)
//   Node:    `serve(createApp({ store: { client: pool }, secrets }))` with @hono/node-server
//   Deno:    `Deno.serve(createApp({ store: { connectionString }, secrets }).fetch)`
import { Hono } from "hono";
import { type SessionEnv, sessionMiddleware, type SessionSource } from "pgsession/hono";

/** What this app keeps in a session. */
export type Data = { user: string; visits: number };

/**
 * @param source The session options, or a function of the context returning them (run once per
 *   bindings object, e.g. to read `c.env` on Workers).
 */
export function createApp<Bindings extends object = object>(
  source: SessionSource<Data, { Bindings: Bindings }>,
): Hono<{ Bindings: Bindings } & SessionEnv<Data>> {
  const app = new Hono<{ Bindings: Bindings } & SessionEnv<Data>>();
  app.use(sessionMiddleware(source));
  app.get("/", async (c) => {
    const visits = ((await c.var.session.get("visits")) ?? 0) + 1;
    c.var.session.set("visits", visits);
    return c.text(`visits: ${visits}\n`);
  });
  app.post("/sign-in", (c) => {
    const session = c.var.session;
    session.regenerate(); // a new id on sign-in, against session fixation
    session.set("user", c.req.query("name") ?? "anonymous");
    return c.json({ user: c.req.query("name") ?? "anonymous" });
  });
  app.post("/sign-out", (c) => {
    c.var.session.destroy();
    return c.body(null, 204);
  });
  return app;
}
