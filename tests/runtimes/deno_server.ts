// The shared app under `Deno.serve`, over Neon's HTTP transport. Run by tests/runtimes.test.ts:
//   deno run -A tests/runtimes/deno_server.ts
// with SUPPORT_PORT, DATABASE_URL and SESSION_TABLE in the environment; with SESSION_SECRET,
// SNAPSHOT_TABLE and SNAPSHOT_MAX_AGE too it also serves the app under /snap/ with signed cookies
// and `snapshot` on. Prints
// `READY <port>` once listening and exits when its stdin closes (so a dying parent cannot leave
// it running).
import { neonConfig } from "@neondatabase/serverless";
import { type AppOptions, createApp, SNAPSHOT_PREFIX, underPrefix } from "./app.ts";

declare const Deno: {
  env: { get(name: string): string | undefined };
  stdin: { readable: ReadableStream<Uint8Array> };
  exit(code?: number): never;
  serve(
    options: { hostname: string; port: number; onListen(addr: { port: number }): void },
    handler: (req: Request) => Response | Promise<Response>,
  ): { shutdown(): Promise<void>; finished: Promise<void> };
};

function required(name: string): string {
  const value: string | undefined = Deno.env.get(name);
  if (!value) throw new Error(`deno_server: ${name} is not set`);
  return value;
}

const supportPort: string = required("SUPPORT_PORT");
const connectionString: string = required("DATABASE_URL");
const table: string = required("SESSION_TABLE");

// Test wiring for the local stand-in of Neon; a real deployment sets none of this.
neonConfig.wsProxy = (host: string, port: number | string): string =>
  `127.0.0.1:${supportPort}/v1?address=${host}:${port}`;
neonConfig.useSecureWebSocket = false;
neonConfig.pipelineConnect = false;

// Store options, not a store: withSession makes one per request. No secrets: the cookie value is
// the bare token, which the other runtimes do not cover.
const app: (req: Request) => Promise<Response> = createApp((): AppOptions => ({
  store: { connectionString, fetchEndpoint: `http://127.0.0.1:${supportPort}/sql`, table },
  cookie: { secure: false },
}));

// Snapshots need secrets, so these cookies are signed.
const secret: string | undefined = Deno.env.get("SESSION_SECRET");
const snapshotTable: string | undefined = Deno.env.get("SNAPSHOT_TABLE");
const snapshotApp: ((req: Request) => Promise<Response>) | null = secret && snapshotTable
  ? createApp((): AppOptions => ({
    store: { connectionString, fetchEndpoint: `http://127.0.0.1:${supportPort}/sql`, table: snapshotTable },
    secrets: [secret],
    cookie: { secure: false },
    snapshot: { maxAge: Number(required("SNAPSHOT_MAX_AGE")) },
  }))
  : null;

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen({ port }: { port: number }): void {
    console.log(`READY ${port}`);
  },
}, (req: Request): Promise<Response> => {
  const snap: Request | null = snapshotApp && underPrefix(req, SNAPSHOT_PREFIX);
  return snap ? snapshotApp!(snap) : app(req);
});

// Stop when the parent closes our stdin.
(async (): Promise<void> => {
  const reader: ReadableStreamDefaultReader<Uint8Array> = Deno.stdin.readable.getReader();
  while (!(await reader.read()).done) { /* drain */ }
  await server.shutdown();
  Deno.exit(0);
})();
