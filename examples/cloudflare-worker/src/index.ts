// A Cloudflare Worker with sessions in Neon: `wrangler dev` / `wrangler deploy` (wrangler.toml).
// Neon's HTTP transport needs no connection setup, so the store is made per request from `env`,
// and the commit runs after the response with ctx.waitUntil. Locally, `npx pgsession dev-proxy`
// stands in for Neon in front of your own PostgreSQL: see .dev.vars.example.
import { PostgresStore, type RequestSession, withSession } from "pgsession";

/** What this Worker keeps in a session. */
interface Data {
  visits: number;
}

interface Env {
  /** A Neon connection string (secret); locally, your PostgreSQL's URL. */
  DATABASE_URL: string;
  /** Unset in production; locally the dev proxy's `/sql` URL, from .dev.vars. */
  DATABASE_HTTP_ENDPOINT?: string;
  /** At least 32 random characters (secret); signs the cookie. */
  SESSION_SECRET: string;
  /** Optional; the table from schema.sql by default. */
  SESSION_TABLE?: string;
}

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

async function app(req: Request, session: RequestSession<Data>): Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname !== "/") return new Response("Not found", { status: 404 });
  const visits = ((await session.get("visits")) ?? 0) + 1;
  session.set("visits", visits);
  return new Response(`visits: ${visits}\n`);
}

export default {
  // The type arguments name what Workers pass after the request: env and ctx.
  fetch: withSession<Data, [Env, ExecutionContext]>(app, (_req, env, ctx) => ({
    store: { connectionString: env.DATABASE_URL, fetchEndpoint: env.DATABASE_HTTP_ENDPOINT, table: env.SESSION_TABLE },
    secrets: [env.SESSION_SECRET],
    waitUntil: ctx.waitUntil.bind(ctx),
  })),

  // The cron trigger: delete expired sessions in batches, within the trigger's time budget.
  scheduled(_controller: { cron: string }, env: Env, ctx: ExecutionContext): void {
    const store = new PostgresStore({
      connectionString: env.DATABASE_URL,
      fetchEndpoint: env.DATABASE_HTTP_ENDPOINT,
      table: env.SESSION_TABLE,
    });
    ctx.waitUntil(store.gc({ batchSize: 1000, maxDurationMs: 20_000 }));
  },
};
