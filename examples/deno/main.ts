// Deno (or Deno Deploy): `deno run -A --unstable-cron examples/deno/main.ts`
// Env: DATABASE_URL (Neon), SESSION_SECRET (at least 32 characters), SESSION_TABLE (optional),
// PORT (default 8000); locally DATABASE_HTTP_ENDPOINT, the `/sql` URL of `npx pgsession dev-proxy`
// (or `deno run -A jsr:@pgsession/pgsession/cli dev-proxy`) in front of your PostgreSQL. In your own project map "pgsession" to "jsr:@pgsession/pgsession" in
// deno.json (`deno add jsr:@pgsession/pgsession`).
import { PostgresStore, withSession } from "pgsession";

/** What this server keeps in a session. */
interface Data {
  visits: number;
}

const connectionString = Deno.env.get("DATABASE_URL")!;
const table = Deno.env.get("SESSION_TABLE");
// Neon's HTTP transport: no pool to manage, one store for the whole process.
const store = new PostgresStore<Data>({
  connectionString,
  fetchEndpoint: Deno.env.get("DATABASE_HTTP_ENDPOINT"),
  table,
});

Deno.serve(
  {
    port: Number(Deno.env.get("PORT") ?? 8000),
    hostname: "127.0.0.1",
    onListen: ({ hostname, port }) => console.log(`Listening on http://${hostname}:${port}/`),
  },
  withSession<Data>(async (_req, session) => {
    const visits = ((await session.get("visits")) ?? 0) + 1;
    session.set("visits", visits);
    return new Response(`visits: ${visits}\n`);
  }, { store, secrets: [Deno.env.get("SESSION_SECRET")!], cookie: { secure: "auto" } }),
);

// Expired sessions, hourly (Deno Deploy runs Deno.cron for you; locally it needs --unstable-cron).
Deno.cron("pgsession gc", "0 * * * *", async () => {
  console.log("gc", await store.gc({ batchSize: 1000, maxDurationMs: 20_000 }));
});
