// Node with node-postgres: `node --import tsx examples/node/server.ts` (or compile it).
// Env: DATABASE_URL (any PostgreSQL), SESSION_SECRET (at least 32 characters), SESSION_TABLE
// (optional), PORT (default 8000). Node's http module speaks IncomingMessage/ServerResponse; the
// few lines of `serve` turn that into the Request/Response withSession expects.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import pg from "pg";
import { PostgresStore, withSession } from "pgsession";

/** What this app keeps in a session. */
interface Data {
  visits: number;
}

// A long-lived process shares one pool and one store across requests.
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
// An idle connection that dies (a database restart) is logged, never fatal.
pool.on("error", (error) => console.error("idle database connection failed:", error.message));
const store = new PostgresStore<Data>({ client: pool, table: process.env.SESSION_TABLE });

const handler = withSession<Data>(async (_req, session) => {
  const visits = ((await session.get("visits")) ?? 0) + 1;
  session.set("visits", visits);
  return new Response(`visits: ${visits}\n`);
}, { store, secrets: [process.env.SESSION_SECRET!], cookie: { secure: "auto" } });

function serve(fetch: (req: Request) => Promise<Response>, port: number): http.Server {
  return http.createServer(async (req, res) => {
    try {
      const headers = new Headers();
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      const hasBody = req.method !== "GET" && req.method !== "HEAD";
      const response = await fetch(
        new Request(`http://${req.headers.host}${req.url}`, {
          method: req.method,
          headers,
          body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : null,
          duplex: "half",
        } as RequestInit),
      );
      res.statusCode = response.status;
      for (const [name, value] of response.headers) if (name !== "set-cookie") res.setHeader(name, value);
      // Each Set-Cookie on its own line: joined with ", " they would break.
      res.setHeader("set-cookie", response.headers.getSetCookie());
      if (response.body) { for await (const chunk of response.body) res.write(chunk); }
      res.end();
    } catch (error) {
      console.error(error);
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    }
  }).listen(port, "127.0.0.1");
}

const server = serve(handler, Number(process.env.PORT ?? 8000));
server.on("listening", () => console.log(`Listening on http://127.0.0.1:${(server.address() as AddressInfo).port}/`));

// Expired sessions, hourly; a cron job running `npx pgsession gc` does the same.
const timer = setInterval(() => store.gc().catch(console.error), 3_600_000);
timer.unref();

process.once("SIGTERM", () => {
  clearInterval(timer);
  server.close(() => pool.end());
  server.closeAllConnections();
});
