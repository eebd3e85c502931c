// The demo under Deno: `deno task start` (deno run -A demo/deno.ts). Same app and environment
// variables as demo/main.ts, served by `Deno.serve`, which speaks Request/Response itself.

import { createDemo } from "./app.ts";
import { type DemoDatabase, openDatabase } from "./database.ts";
import { describeStartupFailure, listenFailure } from "./startup.ts";

const HOUR_MS = 3_600_000;
const env = Deno.env.toObject();
const hostname = env.HOST ?? "127.0.0.1";
const port = Number(env.PORT ?? 8000);

let app: ((req: Request) => Promise<Response>) | undefined;
let server: Deno.HttpServer | undefined;
let database: DemoDatabase | undefined;
let timer: ReturnType<typeof setInterval> | undefined;
let actual = port;
try {
  // The port first: a port in use is one line, before anything opens or creates the database.
  try {
    server = Deno.serve({ hostname, port, onListen: (address) => void (actual = address.port) }, (req) =>
      // Listening starts before the database opens; nobody knows the URL yet, but be polite.
      app
        ? app(req)
        : new Response("Starting, try again in a moment\n", { status: 503, headers: { "retry-after": "1" } }));
  } catch (error) {
    throw listenFailure(error, hostname, port);
  }
  database = await openDatabase(env);
  app = createDemo({
    store: database.store,
    database: database.description,
    secrets: env.SESSION_SECRET ? [env.SESSION_SECRET] : undefined,
  });
  // Expired sessions: remove them at startup and hourly (Deno Deploy would use Deno.cron).
  const collect = () => database!.store.gc().catch((error) => console.error("demo: gc failed", error));
  await collect();
  const hourly = setInterval(collect, HOUR_MS);
  Deno.unrefTimer(hourly);
  timer = hourly;
} catch (error) {
  console.error(describeStartupFailure(error));
  await server?.shutdown();
  await database?.close().catch(() => {});
  Deno.exit(1);
}

const shown = hostname === "127.0.0.1" || hostname === "0.0.0.0" || hostname === "::" ? "localhost" : hostname;
console.log(`pgsession demo: sessions in ${database.description}; open http://${shown}:${actual}/`);

const stop = async () => {
  clearInterval(timer);
  await server!.shutdown();
  // Closing PGlite flushes its files, so the next start finds the sessions again.
  await database!.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
