/**
 * A local stand-in for Neon's HTTP `POST /sql` endpoint (proxy/src/serverless/sql_over_http.rs),
 * so the real `neon()` driver runs against a plain PostgreSQL: single queries, and batches
 * (`sql.transaction([...])`) in one transaction. A development and test tool, never a production
 * path: it relays only to loopback databases.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import pg from "pg";
import { isLoopbackHost } from "./loopback.ts";
import { jsonToPgText, textToJson } from "./neon_json.ts";

/** Counters the endpoint adds to as it serves. */
export interface HttpCounters {
  requests: number;
  statements: number;
}

/** How an endpoint is set up. */
export interface SqlEndpointOptions {
  counters: HttpCounters;
  /** Told about every request once it is answered, for a request log. */
  onRequest?: (event: SqlRequestEvent) => void;
}

/** One answered `POST /sql`. */
export interface SqlRequestEvent {
  status: number;
  /** Statements run (or attempted) for it: 1 for a query, the batch size for a transaction. */
  statements: number;
  /** True for a batch (`{"queries": [...]}`), run in one transaction. */
  batch: boolean;
  /** The database, `host:port/name`, never the password; empty when the header was unusable. */
  database: string;
  /** The error message for a non-200 answer. */
  error?: string;
  ms: number;
}

/** The request handler and its pools. */
export interface SqlEndpoint {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  close(): Promise<void>;
}

interface QueryData {
  query: string;
  params: (string | null)[];
  arrayMode: boolean | undefined;
}

interface FieldJson {
  name: string;
  dataTypeID: number;
  tableID: number;
  columnID: number;
  dataTypeSize: number;
  dataTypeModifier: number;
  format: "text";
}

interface ResultJson {
  fields: FieldJson[];
  rows: unknown[];
  command: string;
  rowCount: number | null;
  rowAsArray: boolean;
}

interface Flags {
  rawOutput: boolean;
  arrayMode: boolean;
}

/** An error answered with a given status and only a message (not a Postgres error). */
class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const MAX_BODY_BYTES: number = 10 * 1024 * 1024;
const ISOLATION_LEVELS: Record<string, string> = {
  ReadUncommitted: "READ UNCOMMITTED",
  ReadCommitted: "READ COMMITTED",
  RepeatableRead: "REPEATABLE READ",
  Serializable: "SERIALIZABLE",
};
// Neon copies every Postgres error field into the 400 body, null when absent.
const ERROR_FIELDS: readonly string[] = [
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "severity",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
];
// Values must stay Postgres text: the driver parses them itself with pg-types.
const TEXT_TYPES: pg.CustomTypesConfig = {
  getTypeParser: (() => (value: string): string => value) as unknown as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * Creates the endpoint: one `pg.Pool` per connection string, values passed through as Postgres
 * text (the driver parses them itself).
 *
 * @param options Counters and the request log hook.
 * @returns The handler for `POST /sql` and a `close()` that ends the pools.
 */
export function createSqlEndpoint(options: SqlEndpointOptions): SqlEndpoint {
  const pools: Map<string, pg.Pool> = new Map();

  function poolFor(connectionString: string): pg.Pool {
    let pool: pg.Pool | undefined = pools.get(connectionString);
    if (pool === undefined) {
      pool = new pg.Pool({ connectionString, max: 10 });
      // An idle client dying (e.g. server restart) must not crash the whole support server.
      pool.on("error", (): void => {});
      pools.set(connectionString, pool);
    }
    return pool;
  }

  async function runQuery(
    client: pg.PoolClient,
    data: QueryData,
    flags: Flags,
    event: SqlRequestEvent,
  ): Promise<ResultJson> {
    options.counters.statements += 1;
    event.statements += 1;
    // queryMode "extended" matches Neon: one statement per query, even without parameters.
    const result: pg.QueryArrayResult<unknown[]> = await client.query({
      text: data.query,
      values: data.params,
      rowMode: "array",
      types: TEXT_TYPES,
      queryMode: "extended",
    } as pg.QueryArrayConfig<unknown[]>);
    const arrayMode: boolean = data.arrayMode ?? flags.arrayMode;
    const fields: FieldJson[] = result.fields.map((f: pg.FieldDef): FieldJson => ({
      name: f.name,
      dataTypeID: f.dataTypeID,
      tableID: f.tableID,
      columnID: f.columnID,
      dataTypeSize: f.dataTypeSize,
      dataTypeModifier: f.dataTypeModifier,
      format: "text",
    }));
    const rows: unknown[] = result.rows.map((row: unknown[]): unknown => {
      const values: unknown[] = row.map((v: unknown, i: number): unknown =>
        v === null || flags.rawOutput ? v : textToJson(v as string, fields[i].dataTypeID)
      );
      return arrayMode ? values : Object.fromEntries(fields.map((f: FieldJson, i: number) => [f.name, values[i]]));
    });
    return { fields, rows, command: result.command ?? "", rowCount: result.rowCount ?? null, rowAsArray: arrayMode };
  }

  async function execute(req: IncomingMessage, body: unknown, event: SqlRequestEvent): Promise<unknown> {
    const connectionString: string = header(req, "neon-connection-string") ?? "";
    event.database = checkLoopbackConnectionString(connectionString);
    const flags: Flags = {
      rawOutput: header(req, "neon-raw-text-output") === "true",
      arrayMode: header(req, "neon-array-mode") === "true",
    };
    const isolationHeader: string | undefined = header(req, "neon-batch-isolation-level");
    const isolation: string | undefined = isolationHeader === undefined ? undefined : ISOLATION_LEVELS[isolationHeader];
    if (isolationHeader !== undefined && isolation === undefined) throw new HttpError(400, "invalid isolation level");
    const payload: QueryData | QueryData[] = parsePayload(body);
    event.batch = Array.isArray(payload);

    const client: pg.PoolClient = await poolFor(connectionString).connect();
    let broken: boolean = false;
    try {
      if (!Array.isArray(payload)) {
        const result: ResultJson = await runQuery(client, payload, flags, event);
        // Neon discards a pooled connection left inside a transaction by a single query.
        broken = client.getTransactionStatus() !== "I";
        return result;
      }
      const modes: string[] = [];
      if (isolation !== undefined) modes.push(`ISOLATION LEVEL ${isolation}`);
      if (header(req, "neon-batch-read-only") === "true") modes.push("READ ONLY");
      if (header(req, "neon-batch-deferrable") === "true") modes.push("DEFERRABLE");
      await client.query(`BEGIN ${modes.join(", ")}`);
      try {
        const results: ResultJson[] = [];
        for (const data of payload) results.push(await runQuery(client, data, flags, event));
        await client.query("COMMIT");
        return { results };
      } catch (error: unknown) {
        await client.query("ROLLBACK").catch((): void => {
          broken = true;
        });
        throw error;
      }
    } catch (error: unknown) {
      // Anything but a clean Postgres error may leave the connection unusable.
      if (!(error instanceof pg.DatabaseError)) broken = true;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    options.counters.requests += 1;
    const started: number = performance.now();
    const event: SqlRequestEvent = { status: 200, statements: 0, batch: false, database: "", ms: 0 };
    let status: number = 200;
    let answer: unknown;
    try {
      answer = await execute(req, await readJson(req), event);
    } catch (error: unknown) {
      [status, answer] = errorResponse(error);
      event.error = String((answer as { message?: unknown }).message);
    }
    res.writeHead(status, { "content-type": "application/json", "access-control-allow-origin": "*" });
    res.end(JSON.stringify(answer));
    if (options.onRequest) options.onRequest({ ...event, status, ms: performance.now() - started });
  }

  async function close(): Promise<void> {
    const ending: Promise<void>[] = [...pools.values()].map((pool: pg.Pool): Promise<void> => pool.end());
    pools.clear();
    await Promise.all(ending);
  }

  return { handle, close };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value: string | string[] | undefined = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size: number = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, "request is too large");
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (error: unknown) {
    throw new HttpError(400, `could not parse request body: ${String(error)}`);
  }
}

function parsePayload(body: unknown): QueryData | QueryData[] {
  const obj: Record<string, unknown> = (typeof body === "object" && body !== null ? body : {}) as Record<
    string,
    unknown
  >;
  if (Array.isArray(obj.queries)) return obj.queries.map(parseQuery);
  return parseQuery(obj);
}

function parseQuery(item: unknown): QueryData {
  const obj: Record<string, unknown> = (typeof item === "object" && item !== null ? item : {}) as Record<
    string,
    unknown
  >;
  if (typeof obj.query !== "string") {
    throw new HttpError(400, "request body must have a query string or a queries array");
  }
  const params: unknown[] = Array.isArray(obj.params) ? obj.params : [];
  const arrayMode: boolean | undefined = typeof obj.arrayMode === "boolean" ? obj.arrayMode : undefined;
  return { query: obj.query, params: params.map(jsonToPgText), arrayMode };
}

/** The endpoint only relays to loopback databases: it must never be an open relay. */
function checkLoopbackConnectionString(connectionString: string): string {
  let url: URL;
  try {
    url = new URL(connectionString);
    if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw new Error("scheme");
  } catch {
    throw new HttpError(400, "missing or invalid Neon-Connection-String header");
  }
  if (!isLoopbackHost(url.hostname)) {
    throw new HttpError(
      400,
      `only loopback databases are allowed, not ${url.hostname}: point the app's connection string at the local PostgreSQL`,
    );
  }
  return `${url.hostname}:${url.port || "5432"}${url.pathname}`;
}

function errorResponse(error: unknown): [number, Record<string, unknown>] {
  if (error instanceof HttpError) return [error.status, { message: error.message }];
  if (error instanceof pg.DatabaseError) {
    const fields: Record<string, unknown> = error as unknown as Record<string, unknown>;
    const body: Record<string, unknown> = { message: error.message };
    for (const key of ERROR_FIELDS) body[key] = fields[key] ?? null;
    return [400, body];
  }
  // Connection failures and the like: Neon answers 500, the driver reports "Server error".
  return [500, { message: error instanceof Error ? error.message : String(error) }];
}
