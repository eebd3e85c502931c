// Test helpers shared by Node (`node --import tsx --test`) and Deno (`deno test`). The support
// server always runs as a separate Node process, so both runtimes test against the same thing
// and Deno's leak checks only see one child process and its pipes.
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { neonConfig, type WebSocketConstructor } from "@neondatabase/serverless";
import { WebSocket as NodeWebSocket } from "ws";

export interface SupportStats {
  http: { requests: number; statements: number };
  ws: { connections: number; statements: number };
}

export interface SupportServer {
  port: number;
  /** Base URL, e.g. `http://127.0.0.1:PORT` (the SQL endpoint is `${url}/sql`). */
  url: string;
  stats(): Promise<SupportStats>;
  reset(): Promise<void>;
  /** Delay (ms) added per HTTP round trip and per WebSocket client message. */
  setDelay(ms: number): Promise<void>;
  close(): Promise<void>;
}

const SERVER_SCRIPT: string = fileURLToPath(new URL("./server.ts", import.meta.url));
const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));
const START_TIMEOUT_MS: number = 20_000;
const STOP_TIMEOUT_MS: number = 5_000;

export function databaseUrl(): string {
  return process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
}

/** Under Deno, process.execPath is deno itself: the server needs a real `node` from PATH. */
function nodeBinary(): string {
  return "Deno" in globalThis ? "node" : process.execPath;
}

export function startSupportServer(): Promise<SupportServer> {
  // cwd = repo root so that `--import tsx` resolves from this project's node_modules.
  const child: ChildProcess = spawn(nodeBinary(), ["--import", "tsx", SERVER_SCRIPT], {
    cwd: REPO_ROOT,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited: Promise<void> = new Promise<void>((resolve: () => void): void => {
    child.once("close", (): void => resolve());
  });

  return new Promise<SupportServer>((resolve: (s: SupportServer) => void, reject: (e: Error) => void): void => {
    let output: string = "";
    const fail = (message: string): void => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`support server: ${message}; output: ${output}`));
    };
    const timer: ReturnType<typeof setTimeout> = setTimeout(
      (): void => fail("no READY line in time"),
      START_TIMEOUT_MS,
    );
    child.once("error", (error: Error): void => fail(error.message));
    child.once("exit", (code: number | null): void => fail(`exited early with ${code}`));
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string): void => {
      if (output.includes("\n")) return; // READY already seen; keep draining the pipe
      output += chunk;
      const match: RegExpMatchArray | null = /^READY (\d+)\n/.exec(output);
      if (match === null) return;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      resolve(handle(child, exited, Number(match[1])));
    });
  });
}

function handle(child: ChildProcess, exited: Promise<void>, port: number): SupportServer {
  const url: string = `http://127.0.0.1:${port}`;
  // Always read the body: Deno's sanitizers flag unconsumed fetch responses.
  async function call(method: string, path: string): Promise<unknown> {
    const res: Response = await fetch(url + path, { method });
    const body: unknown = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(body)}`);
    return body;
  }
  return {
    port,
    url,
    stats: async (): Promise<SupportStats> => (await call("GET", "/__stats")) as SupportStats,
    reset: async (): Promise<void> => {
      await call("POST", "/__reset");
    },
    setDelay: async (ms: number): Promise<void> => {
      await call("POST", `/__delay?ms=${ms}`);
    },
    close: async (): Promise<void> => {
      // Closing stdin is the polite stop; SIGKILL only if it does not exit in time.
      child.stdin?.end();
      const timer: ReturnType<typeof setTimeout> = setTimeout((): void => {
        child.kill("SIGKILL");
      }, STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Points the real driver at the support server. These are global driver settings: only test
 * code may change them, never src/.
 */
export function configureNeon(port: number): void {
  neonConfig.fetchEndpoint = `http://127.0.0.1:${port}/sql`;
  neonConfig.wsProxy = (host: string, dbPort: number | string): string =>
    `127.0.0.1:${port}/v1?address=${host}:${dbPort}`;
  neonConfig.useSecureWebSocket = false;
  // The default ("password") pipelines a cleartext password and breaks trust/scram auth.
  neonConfig.pipelineConnect = false;
  // Node 20 has no global WebSocket; Deno's built-in one works with the driver.
  const native: unknown = (globalThis as { WebSocket?: unknown }).WebSocket;
  neonConfig.webSocketConstructor = (native ?? NodeWebSocket) as WebSocketConstructor;
}
