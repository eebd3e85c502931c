// The demo under Deno: `deno task start` (deno run -A demo/deno.ts). Same app and environment
// variables as demo/main.ts, served by `Deno.serve`, which speaks Request/Response itself.
import { gc } from "../mod.ts";
import { createDemo } from "./app.ts";
import { openDatabase } from "./database.ts";

const HOUR_MS = 3_600_000;
const env = Deno.env.toObject();

const database = await openDatabase(env);
const app = createDemo({
  store: database.store,
  database: database.description,
  secrets: env.SESSION_SECRET ? [env.SESSION_SECRET] : undefined,
});

// Expired sessions: remove them at startup and hourly (Deno Deploy would use Deno.cron).
const collect = () => gc(database.store).catch((error) => console.error("demo: gc failed", error));
await collect();
const timer = setInterval(collect, HOUR_MS);
Deno.unrefTimer(timer);

const hostname = env.HOST ?? "127.0.0.1";
const server = Deno.serve({
  hostname,
  port: Number(env.PORT ?? 8000),
  onListen({ port }) {
    const shown = hostname === "127.0.0.1" || hostname === "0.0.0.0" || hostname === "::" ? "localhost" : hostname;
    console.log(`pgsession demo: sessions in ${database.description}; open http://${shown}:${port}/`);
  },
}, (req) => app(req));

const stop = async () => {
  clearInterval(timer);
  await server.shutdown();
  // Closing PGlite flushes its files, so the next start finds the sessions again.
  await database.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
