// A PgBouncer of the test's own in transaction mode, the way most serverless Node applications
// reach PostgreSQL: each transaction may run on another server connection, and a client's
// prepared statements do not follow it. Debian's 1.18 also has no prepared-statement support at
// all (1.21+ only with max_prepared_statements > 0), which is the harshest case.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import pg from "pg";

/** A running PgBouncer in front of the test database. */
export interface PgBouncer {
  /** A connection string to the database through PgBouncer (no startup `options`: PgBouncer refuses them). */
  readonly url: string;
  /** Stops PgBouncer and removes its directory. */
  close(): Promise<void>;
}

/** How {@linkcode startPgBouncer} sets PgBouncer up. */
export interface PgBouncerOptions {
  /**
   * Server connections per database and user: small, so that client connections really share
   * them and a client's next transaction often runs on another one.
   * @default {2}
   */
  poolSize?: number | undefined;
  /** Set on every server connection (PgBouncer's per-database `timezone`). */
  timeZone?: string | undefined;
}

const READY_TIMEOUT_MS = 10_000;

/** Where Debian installs it (`/usr/sbin`, often not on a non-root PATH), or `$PGBOUNCER`. */
function pgbouncerBinary(): string {
  const fromEnv = process.env.PGBOUNCER;
  if (fromEnv) return fromEnv;
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, "pgbouncer"))) return join(dir, "pgbouncer");
  }
  throw new Error(
    "pgbouncer is not installed: the transport matrix runs the store through PgBouncer in transaction mode. " +
      "Install Debian's package (apt-get install pgbouncer; .ci/run does) or set PGBOUNCER to its path",
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A libpq-style value, quoted when it needs to be. */
function quoted(value: string): string {
  return /^[A-Za-z0-9_./:-]+$/.test(value) ? value : `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/**
 * Starts PgBouncer in transaction mode on a free loopback port, in front of `target`, and waits
 * until a query goes through it.
 *
 * @param target The database PgBouncer connects to (its user, password, host, port and name).
 * @param options Pool size and session time zone.
 * @returns The running PgBouncer.
 * @throws {Error} When pgbouncer is not installed or does not come up.
 */
export async function startPgBouncer(target: string, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  const url = new URL(target);
  const database = decodeURIComponent(url.pathname.slice(1)) || "postgres";
  const user = decodeURIComponent(url.username) || "postgres";
  const server = [
    `host=${quoted(url.hostname || "127.0.0.1")}`,
    `port=${url.port || "5432"}`,
    `dbname=${quoted(database)}`,
    `user=${quoted(user)}`,
    ...(url.password ? [`password=${quoted(decodeURIComponent(url.password))}`] : []),
    ...(options.timeZone ? [`timezone=${quoted(options.timeZone)}`] : []),
  ].join(" ");

  const dir = await mkdtemp(join(tmpdir(), "pgsession-pgbouncer-"));
  try {
    // PgBouncer refuses to run as root (CI does): it drops to an unprivileged user, who must read the ini.
    await chmod(dir, 0o755);
    let failure = "";
    // Another process may take the free port before PgBouncer binds it: try again on a new one.
    for (let attempt = 0; attempt < 3; attempt++) {
      const started = await attemptStart(binary, dir, await freePort(), database, server, options, target);
      if (typeof started !== "string") {
        return {
          url: started.url,
          close: async () => {
            await started.stop();
            await rm(dir, { recursive: true, force: true });
          },
        };
      }
      failure = started;
      if (!/address already in use/i.test(failure)) break;
    }
    throw new Error(`PgBouncer did not start: ${failure}`);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** The user PgBouncer drops to when started as root. */
function unprivilegedUser(): string {
  try {
    return /^postgres:/m.test(readFileSync("/etc/passwd", "utf8")) ? "postgres" : "nobody";
  } catch {
    return "nobody";
  }
}

/** Starts PgBouncer on `port`: running, or why not. */
async function attemptStart(
  binary: string,
  dir: string,
  port: number,
  database: string,
  server: string,
  options: PgBouncerOptions,
  target: string,
): Promise<{ url: string; stop(): Promise<void> } | string> {
  const ini = join(dir, "pgbouncer.ini");
  await writeFile(
    ini,
    [
      "[databases]",
      `${database} = ${server}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      // Whoever connects runs as the user of the database line; the test server trusts loopback.
      "auth_type = any",
      "pool_mode = transaction",
      `default_pool_size = ${options.poolSize ?? 2}`,
      "max_client_conn = 500",
      // Hand out the server connections in turn: a client's next transaction meets another
      // server connection as soon as there are two, as it would under real load.
      "server_round_robin = 1",
      "ignore_startup_parameters = extra_float_digits",
      "log_connections = 0",
      "log_disconnections = 0",
      "",
    ].join("\n"),
  );
  await chmod(ini, 0o644);
  const asRoot = process.getuid?.() === 0;
  const child: ChildProcess = spawn(binary, [...(asRoot ? ["-u", unprivilegedUser()] : []), ini], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4_000);
  });
  child.once("error", (error) => {
    stderr += `\n${error.message}`;
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM"); // immediate shutdown
    await exited;
  };
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  url.search = "";
  const ready = await waitReady(url.toString(), exited);
  if (ready === true) return { url: url.toString(), stop };
  await stop();
  return `${ready}: ${stderr.trim() || "no output"}`;
}

/** Polls with a query until one goes through, PgBouncer exits, or the time is up. */
async function waitReady(url: string, exited: Promise<void>): Promise<true | string> {
  let gone: string | undefined;
  void exited.then(() => {
    gone = "exited";
  });
  const deadline = performance.now() + READY_TIMEOUT_MS;
  let last = "";
  while (performance.now() < deadline) {
    if (gone) return gone;
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    client.on("error", (): void => {});
    try {
      await client.connect();
      await client.query("select 1");
      return true;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    } finally {
      await client.end().catch((): void => {});
    }
    if (gone) return gone;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return `no answer within ${READY_TIMEOUT_MS} ms: ${last}`;
}
