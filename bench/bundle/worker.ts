// A Cloudflare Worker using pgsession (HTTP transport, signed cookies), bundled by the benchmark
// to measure what the library adds to a deployment.
import { withSession } from "../../mod.ts";

interface Env {
  DATABASE_URL: string;
  SESSION_SECRET: string;
}

export default {
  fetch: withSession<Record<string, unknown>, [Env]>(async (_req, session) => {
    const visits = ((await session.get("visits")) as number | undefined ?? 0) + 1;
    session.set("visits", visits);
    return new Response(`visit ${visits}`);
  }, (_req, env) => ({ store: { connectionString: env.DATABASE_URL }, secrets: [env.SESSION_SECRET] })),
};
