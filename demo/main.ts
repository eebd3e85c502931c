// The demo under Node: `npm start` (node --import tsx demo/main.ts).
//
//   PORT           port to listen on (default 8000; 0 picks a free one)
//   HOST           interface to listen on (default 127.0.0.1)
//   DATABASE_URL   a PostgreSQL URL; unset: embedded PGlite in DEMO_DATA_DIR (default .data/demo)
//   SESSION_SECRET optional, at least 32 characters: sign the cookie
//
// Node's http module speaks IncomingMessage/ServerResponse, the app speaks Request/Response:
// the small bridge below converts between them.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";

import { createDemo } from "./app.ts";
import { type DemoDatabase, openDatabase } from "./database.ts";
import { describeStartupFailure, listenFailure } from "./startup.ts";

const HOUR_MS = 3_600_000;

let app: ((req: Request) => Promise<Response>) | undefined;
const server = http.createServer((req, res) => {
  handle(req, res).catch((error) => {
    console.error("demo: cannot answer", req.method, req.url, error);
    if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" }).end("Internal Server Error\n");
    else res.destroy();
  });
});

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (!app) {
    // Listening starts before the database opens; nobody knows the URL yet, but be polite.
    res.writeHead(503, { "content-type": "text/plain", "retry-after": "1" }).end("Starting, try again in a moment\n");
    return;
  }
  const method = req.method ?? "GET";
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  const request = new Request(new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`), {
    method,
    headers,
    body: method === "GET" || method === "HEAD" ? null : (Readable.toWeb(req) as ReadableStream<Uint8Array>),
    duplex: "half", // undici needs it for a stream body
  } as RequestInit);
  const response = await app(request);
  res.statusCode = response.status;
  for (const [name, value] of response.headers) if (name !== "set-cookie") res.setHeader(name, value);
  // Headers would join several Set-Cookie values with ", ", which breaks them: send each.
  const cookies = response.headers.getSetCookie();
  if (cookies.length) res.setHeader("set-cookie", cookies);
  if (response.body && method !== "HEAD") {
    for await (const chunk of response.body) res.write(chunk);
  }
  res.end();
}

const port = Number(process.env.PORT ?? 8000);
const host = process.env.HOST ?? "127.0.0.1";
let database: DemoDatabase | undefined;
let timer: ReturnType<typeof setInterval> | undefined;
try {
  // The port first: a port in use is one line, before anything opens or creates the database.
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => reject(listenFailure(error, host, port)));
    server.listen(port, host, resolve);
  });
  database = await openDatabase(process.env);
  app = createDemo({
    store: database.store,
    database: database.description,
    secrets: process.env.SESSION_SECRET ? [process.env.SESSION_SECRET] : undefined,
  });
  // Expired sessions: remove them at startup and hourly (on Workers or Vercel a cron does this).
  const collect = () => database!.store.gc().catch((error) => console.error("demo: gc failed", error));
  await collect();
  timer = setInterval(collect, HOUR_MS);
  timer.unref();
} catch (error) {
  console.error(describeStartupFailure(error));
  server.close();
  await database?.close().catch(() => {});
  process.exit(1);
}

const { port: actual } = server.address() as AddressInfo;
const shown = host === "127.0.0.1" || host === "0.0.0.0" || host === "::" ? "localhost" : host;
console.log(`pgsession demo: sessions in ${database.description}; open http://${shown}:${actual}/`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  // Closing PGlite flushes its files, so the next start finds the sessions again.
  await database!.close();
  process.exit(0);
}
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
