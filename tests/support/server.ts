// The test suite's Neon stand-in: `pgsession dev-proxy`'s server (cli/dev_proxy/) plus test
// controls (/__stats, /__reset, /__delay). Run as a script it prints `READY <port>` and serves
// until it is killed or its stdin closes, so a parent that dies cannot leave it running.
import type http from "node:http";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { type DevProxyStats, type RunningDevProxy, startDevProxy } from "../../cli/dev_proxy/server.ts";

export type SupportStats = DevProxyStats;

export interface RunningSupportServer {
  port: number;
  close(): Promise<void>;
}

function controls(req: http.IncomingMessage, res: http.ServerResponse, proxy: RunningDevProxy): boolean {
  const url: URL = new URL(req.url ?? "/", "http://localhost");
  const route: string = `${req.method ?? ""} ${url.pathname}`;
  const json = (status: number, body: unknown): true => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
    return true;
  };
  if (route === "GET /__stats") return json(200, proxy.stats);
  if (route === "POST /__reset") {
    // Mutate in place: the endpoint and proxy hold these same counter objects.
    Object.assign(proxy.stats.http, { requests: 0, statements: 0 });
    Object.assign(proxy.stats.ws, { connections: 0, statements: 0 });
    return json(200, proxy.stats);
  }
  if (route === "POST /__delay") {
    const ms: number = Number(url.searchParams.get("ms"));
    if (!Number.isFinite(ms) || ms < 0) return json(400, { message: "ms must be a number >= 0" });
    proxy.delayMs = ms;
    return json(200, { delayMs: ms });
  }
  return false;
}

export async function startServer(port: number = 0): Promise<RunningSupportServer> {
  const proxy: RunningDevProxy = await startDevProxy({ port, host: "127.0.0.1", extraRoutes: controls });
  return { port: proxy.port, close: (): Promise<void> => proxy.close() };
}

async function main(): Promise<void> {
  const running: RunningSupportServer = await startServer(Number(process.env.SUPPORT_PORT ?? 0));
  let stopping: boolean = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    running.close().finally((): never => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
  process.stdout.write(`READY ${running.port}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown): void => {
    console.error(error);
    process.exit(1);
  });
}
