// Starts a server as a child process and waits for its `READY <port>` line. Stopping closes its
// stdin first (the servers exit on EOF), then SIGKILLs it if it is still running.
import { type ChildProcess, spawn } from "node:child_process";

export interface ChildServer {
  url: string;
  /** Everything the child wrote to stderr so far, for failure messages. */
  stderr(): string;
  close(): Promise<void>;
}

const START_TIMEOUT_MS: number = 30_000;
const STOP_TIMEOUT_MS: number = 5_000;

export function spawnServer(
  command: string,
  args: string[],
  options: { cwd: string; env: Record<string, string> },
): Promise<ChildServer> {
  const child: ChildProcess = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited: Promise<void> = new Promise<void>((resolve: () => void): void => {
    child.once("close", (): void => resolve());
  });
  let stdout: string = "";
  let stderr: string = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string): void => {
    stderr += chunk;
  });

  return new Promise<ChildServer>((resolve: (s: ChildServer) => void, reject: (e: Error) => void): void => {
    const fail = (message: string): void => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")}: ${message}\nstdout: ${stdout}\nstderr: ${stderr}`));
    };
    const timer: ReturnType<typeof setTimeout> = setTimeout(
      (): void => fail("no READY line in time"),
      START_TIMEOUT_MS,
    );
    child.once("error", (error: Error): void => fail(error.message));
    child.once("exit", (code: number | null): void => fail(`exited early with ${code}`));
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string): void => {
      const ready: boolean = /^READY \d+$/m.test(stdout);
      stdout += chunk;
      // Pass the child's own logging through once it is up.
      if (ready) return void process.stdout.write(chunk);
      const match: RegExpExecArray | null = /^READY (\d+)$/m.exec(stdout);
      if (match === null) return;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      resolve({
        url: `http://127.0.0.1:${match[1]}`,
        stderr: (): string => stderr,
        close: async (): Promise<void> => {
          child.stdin?.end();
          const killer: ReturnType<typeof setTimeout> = setTimeout((): void => {
            child.kill("SIGKILL");
          }, STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(killer);
        },
      });
    });
  });
}
