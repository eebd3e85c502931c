// The shared app as Vercel Edge Functions, bundled by tests/runtimes/bundle.ts into one classic
// script and evaluated in the `edge-runtime` package's VM (the sandbox Vercel's tooling runs edge
// code in locally). On Vercel `process.env` exists at run time; this VM has no `process`, so the
// test replaces each `process.env.X` at build time (esbuild `define`).
//
// Two "routes", as a Vercel project would have them:
//   /api/cron/gc  the cron job (vercel.json `crons`): Vercel calls it with
//                 `Authorization: Bearer ${CRON_SECRET}`; anything else is 401
//   /snap/...     the shared app as below with `snapshot: { maxAge: SNAPSHOT_MAX_AGE }`, in its
//                 own table
//   everything else: the shared app over Neon's HTTP transport, committing in the background
//                 with the event's waitUntil (Vercel's `waitUntil` from @vercel/functions)
import { neonConfig } from "@neondatabase/serverless";
import { type GcResult, PostgresStore } from "../../mod.ts";
import { type AppOptions, createApp, SNAPSHOT_PREFIX, underPrefix } from "./app.ts";

declare const process: { env: Record<string, string> };

interface FetchEvent {
  readonly request: Request;
  respondWith(response: Response | Promise<Response>): void;
  waitUntil(promise: Promise<unknown>): void;
}
declare function addEventListener(type: "fetch", listener: (event: FetchEvent) => void): void;

// Test wiring for the local stand-in of Neon; a real deployment sets none of this.
const fetchEndpoint: string = `http://127.0.0.1:${process.env.SUPPORT_PORT}/sql`;
neonConfig.wsProxy = (host: string, port: number | string): string =>
  `127.0.0.1:${process.env.SUPPORT_PORT}/v1?address=${host}:${port}`;
neonConfig.useSecureWebSocket = false;
neonConfig.pipelineConnect = false;

/** app/api/[...path]/route.ts: `export const runtime = "edge"; export const GET = session, POST = session;` */
const session = createApp((_req: Request, event: FetchEvent): AppOptions => ({
  store: { connectionString: process.env.DATABASE_URL, fetchEndpoint, table: process.env.SESSION_TABLE },
  secrets: [process.env.SESSION_SECRET],
  // Not Secure over the test's plain http://, Secure behind Vercel's https://.
  cookie: { secure: "auto" },
  waitUntil: (p: Promise<unknown>): void => event.waitUntil(p),
}));

/** The same, reading the session from its snapshot cookie when that is fresh. */
const snapshotSession = createApp((_req: Request, event: FetchEvent): AppOptions => ({
  store: { connectionString: process.env.DATABASE_URL, fetchEndpoint, table: process.env.SNAPSHOT_TABLE },
  secrets: [process.env.SESSION_SECRET],
  cookie: { secure: "auto" },
  snapshot: { maxAge: Number(process.env.SNAPSHOT_MAX_AGE) },
  waitUntil: (p: Promise<unknown>): void => event.waitUntil(p),
}));

/** app/api/cron/gc/route.ts: `export const runtime = "edge"; export async function GET(req) {…}` */
async function cronGc(req: Request): Promise<Response> {
  const secret: string | undefined = process.env.CRON_SECRET;
  if (!secret || req.headers.get("authorization") !== `Bearer ${secret}`) {
    return new Response("Unauthorized", { status: 401 });
  }
  const store: PostgresStore = new PostgresStore({
    connectionString: process.env.DATABASE_URL,
    fetchEndpoint,
    table: process.env.SESSION_TABLE,
  });
  const result: GcResult = await store.gc({ batchSize: 2, maxDurationMs: 10_000, signal: req.signal });
  return Response.json(result);
}

addEventListener("fetch", (event: FetchEvent): void => {
  const { pathname } = new URL(event.request.url);
  if (pathname === "/api/cron/gc") {
    event.respondWith(event.request.method === "GET" ? cronGc(event.request) : new Response(null, { status: 405 }));
  } else {
    const snap: Request | null = underPrefix(event.request, SNAPSHOT_PREFIX);
    event.respondWith(snap ? snapshotSession(snap, event) : session(event.request, event));
  }
});
