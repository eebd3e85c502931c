// Hono: a `sessions()` middleware that puts the session on the context, then ordinary routes.
// Runs wherever Hono runs; for example on Workers:
//
//   export default {
//     fetch: (req: Request, env: Env, ctx: ExecutionContext) =>
//       createApp({ store: { connectionString: env.DATABASE_URL }, secrets: [env.SESSION_SECRET] }).fetch(req, env, ctx),
//   };
//
// or on Node with a pg.Pool: `createApp({ store: new PostgresStore({ client: pool }), secrets })`.
import { Hono, type MiddlewareHandler } from "hono";
import { type Session, withSession, type WithSessionOptions } from "pgsession";

type Env = { Variables: { session: Session } };

/** Runs the rest of the chain inside withSession; the session is committed after it. */
export function sessions(options: WithSessionOptions): MiddlewareHandler<Env> {
  const wrapped = withSession(async (_req, session, c: Parameters<MiddlewareHandler<Env>>[0], next: () => Promise<void>) => {
    c.set("session", session);
    await next();
    return c.res;
  }, options);
  return async function sessionMiddleware(c, next) {
    c.res = await wrapped(c.req.raw, c, next);
  };
}

export function createApp(options: WithSessionOptions): Hono<Env> {
  const app = new Hono<Env>();
  app.use(sessions(options));
  app.get("/", async (c) => {
    const session = c.get("session");
    const visits = ((await session.get("visits")) as number | undefined ?? 0) + 1;
    session.set("visits", visits);
    return c.text(`visits: ${visits}\n`);
  });
  app.post("/sign-in", async (c) => {
    const session = c.get("session");
    const user = c.req.query("name") ?? "anonymous";
    session.regenerate(); // a new id on sign-in, against session fixation
    session.set("user", user);
    return c.json({ user });
  });
  app.post("/sign-out", (c) => {
    c.get("session").destroy();
    return c.body(null, 204);
  });
  return app;
}
