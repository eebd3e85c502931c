// The Hono example as a Cloudflare Worker: the app is built once, when the module loads; the
// session options come from the bindings on the first request (and are validated then, once).
// Neon's HTTP transport needs no per-request connection; updates are committed in
// c.executionCtx.waitUntil after the response.
import { createApp } from "./app.ts";

interface Bindings {
  DATABASE_URL: string;
  SESSION_SECRET: string;
}

export default createApp<Bindings>((c) => ({
  store: { connectionString: c.env.DATABASE_URL },
  secrets: [c.env.SESSION_SECRET],
}));
