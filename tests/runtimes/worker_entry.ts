// The shared app as a Cloudflare module Worker, bundled by tests/runtimes/bundle.ts and run in
// workerd by Miniflare. Three set-ups, chosen by the first path segment:
//   /http/...     Neon's HTTP transport (`connectionString`), commit in the background (waitUntil)
//   /pool/...     a Neon Pool over WebSocket, created per request (Workers forbid reusing I/O
//                 objects across requests); commit before responding, then
//                 ctx.waitUntil(pool.end()) from `release`
//   /pool-bg/...  the same Pool, commit in the background with waitUntil, `release` ending the
//                 pool once that background commit is done
// and a `scheduled` handler that collects expired sessions.
import { neonConfig, Pool } from "@neondatabase/serverless";
import { type GcResult, PostgresStore } from "../../mod.ts";
import { type AppOptions, createApp } from "./app.ts";

interface Env {
  SUPPORT_PORT: string;
  DATABASE_URL: string;
  /** Connection string for the per-request pools (tagged with application_name). */
  POOL_DATABASE_URL: string;
  HTTP_TABLE: string;
  POOL_TABLE: string;
  POOL_BG_TABLE: string;
  SNAPSHOT_TABLE: string;
  SNAPSHOT_MAX_AGE: string;
  SESSION_SECRET: string;
}

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
}

interface ScheduledController {
  readonly cron: string;
  readonly scheduledTime: number;
}

// Test wiring for the local stand-in of Neon; a real deployment sets none of this. Global
// settings, so setting them again on every event is harmless.
function configureNeon(env: Env): void {
  neonConfig.wsProxy = (host: string, port: number | string): string =>
    `127.0.0.1:${env.SUPPORT_PORT}/v1?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineConnect = false;
}

type Transport = "http" | "snap" | "pool" | "pool-bg";

const app = createApp((_req: Request, env: Env, ctx: ExecutionContext, transport: Transport): AppOptions => {
  if (transport === "http" || transport === "snap") {
    const snapshot: boolean = transport === "snap";
    return {
      store: {
        connectionString: env.DATABASE_URL,
        fetchEndpoint: `http://127.0.0.1:${env.SUPPORT_PORT}/sql`,
        table: snapshot ? env.SNAPSHOT_TABLE : env.HTTP_TABLE,
      },
      secrets: [env.SESSION_SECRET],
      cookie: { secure: false },
      waitUntil: (p: Promise<unknown>): void => ctx.waitUntil(p),
      snapshot: snapshot ? { maxAge: Number(env.SNAPSHOT_MAX_AGE) } : undefined,
    };
  }
  // Nothing connects until the session's first query: /health never opens a socket.
  const pool: Pool = new Pool({ connectionString: env.POOL_DATABASE_URL, max: 1 });
  if (transport === "pool") {
    return {
      store: { client: pool, table: env.POOL_TABLE },
      secrets: [env.SESSION_SECRET],
      cookie: { secure: false },
      release: (): void => ctx.waitUntil(pool.end()),
    };
  }
  return {
    store: { client: pool, table: env.POOL_BG_TABLE },
    secrets: [env.SESSION_SECRET],
    cookie: { secure: false },
    waitUntil: (p: Promise<unknown>): void => ctx.waitUntil(p),
    // Runs inside the background commit, which waitUntil keeps alive.
    release: (): Promise<void> => pool.end(),
  };
});

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response> {
    configureNeon(env);
    const url: URL = new URL(request.url);
    // Lets the test check which globals this worker's compatibility flags gave it.
    if (url.pathname === "/__globals") {
      return Response.json({ Buffer: typeof (globalThis as { Buffer?: unknown }).Buffer });
    }
    const match: RegExpExecArray | null = /^\/(http|snap|pool|pool-bg)(\/.*)$/.exec(url.pathname);
    if (match === null) {
      return new Response("expected /http/..., /snap/..., /pool/... or /pool-bg/...", { status: 404 });
    }
    url.pathname = match[2]!;
    return app(new Request(url, request), env, ctx, match[1] as Transport);
  },

  scheduled(controller: ScheduledController, env: Env, ctx: ExecutionContext): void {
    configureNeon(env);
    if (controller.cron !== "*/5 * * * *") throw new Error(`unexpected cron ${controller.cron}`);
    const store: PostgresStore = new PostgresStore({
      connectionString: env.DATABASE_URL,
      fetchEndpoint: `http://127.0.0.1:${env.SUPPORT_PORT}/sql`,
      table: env.HTTP_TABLE,
    });
    // Batched, within the cron trigger's time budget; the event lasts until this settles.
    ctx.waitUntil(
      store.gc({ batchSize: 2, maxDurationMs: 10_000 }).then((result: GcResult): void => {
        console.log(`gc ${JSON.stringify(result)}`);
      }),
    );
  },
};
