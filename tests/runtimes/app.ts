// The one app every runtime entry serves (Node, Deno, Workers, Vercel Edge): a fetch handler
// wrapped by withSession. Runtime-agnostic: web standards only, options passed in.
//
//   GET  /health          never touches the session
//   POST /login?user=ada  regenerate, set the user and some CBOR-only types, leave a flash
//   GET  /me              user, visits, the flash (read once), and how the CBOR types came back
//   POST /visit           visits + 1
//   POST /logout          destroy
//   POST /echo            streams the request body back (no session)
//   GET  /stream          a body in two chunks, 600 ms apart (no session)
import { type Session, withSession, type WithSessionOptions } from "../../mod.ts";

export interface AppData extends Record<string, unknown> {
  user: string;
  visits: number;
  since: Date;
  roles: Set<string>;
  big: bigint;
  bytes: Uint8Array;
}

export type AppOptions = WithSessionOptions<AppData>;

/** Values only CBOR (not JSON) carries; /me reports whether they survived the round trip. */
export const SINCE: Date = new Date("2024-02-29T12:34:56.789Z");
export const BIG: bigint = 2n ** 70n + 1n;
export const BYTES: Uint8Array = new Uint8Array([0, 1, 127, 128, 255]);

/** What GET /me answers. */
export interface Me {
  user: string | null;
  visits: number;
  flash: string | null;
  types: { since: string | false; roles: string[] | false; big: string | false; bytes: number[] | false } | null;
}

export const STREAM_GAP_MS: number = 600;

/** Where the entries serve the app a second time, with `snapshot` on (tests/runtimes/snapshot_scenario.ts). */
export const SNAPSHOT_PREFIX: string = "/snap";

/**
 * The request with `prefix` taken off its path, or `null` when its path is not under `prefix`.
 * Its `signal` is not carried over: reading a `Deno.serve` request's signal prints a notice that
 * tests/runtimes.test.ts checks the library never causes.
 */
export function underPrefix(req: Request, prefix: string): Request | null {
  const url: URL = new URL(req.url);
  if (!url.pathname.startsWith(`${prefix}/`)) return null;
  url.pathname = url.pathname.slice(prefix.length);
  // duplex: a stream body needs it on Node.
  const init = { method: req.method, headers: req.headers, body: req.body, duplex: "half" };
  return new Request(url, init as RequestInit);
}

async function routes(req: Request, session: Session<AppData>): Promise<Response> {
  const url: URL = new URL(req.url);
  switch (`${req.method} ${url.pathname}`) {
    case "GET /health":
      return new Response("ok");

    case "POST /login": {
      const user: string = url.searchParams.get("user") ?? "anonymous";
      session.regenerate();
      session.set("user", user);
      session.set("since", SINCE);
      session.set("roles", new Set(["admin", "dev"]));
      session.set("big", BIG);
      session.set("bytes", BYTES);
      session.flash("notice", `Welcome, ${user}`);
      // An unrelated cookie: every runtime must keep both Set-Cookie headers apart.
      const headers: Headers = new Headers({ "set-cookie": "theme=dark; Path=/; SameSite=Lax" });
      return Response.json({ user }, { headers });
    }

    case "GET /me": {
      const user: string | undefined = await session.get("user");
      const since: unknown = await session.get("since");
      const roles: unknown = await session.get("roles");
      const big: unknown = await session.get("big");
      const bytes: unknown = await session.get("bytes");
      const me: Me = {
        user: user ?? null,
        visits: (await session.get("visits")) ?? 0,
        flash: ((await session.getFlash("notice")) as string | undefined) ?? null,
        types: user === undefined ? null : {
          since: since instanceof Date && since.toISOString(),
          roles: roles instanceof Set && [...roles].sort(),
          big: typeof big === "bigint" && String(big),
          bytes: bytes instanceof Uint8Array && [...bytes],
        },
      };
      return Response.json(me);
    }

    case "POST /visit": {
      const visits: number = ((await session.get("visits")) ?? 0) + 1;
      session.set("visits", visits);
      return Response.json({ visits });
    }

    case "POST /logout":
      session.destroy();
      return new Response(null, { status: 204 });

    case "POST /echo":
      return new Response(req.body, { headers: { "content-type": "application/octet-stream" } });

    case "GET /stream": {
      const encoder: TextEncoder = new TextEncoder();
      const body: ReadableStream<Uint8Array> = new ReadableStream<Uint8Array>({
        async start(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
          controller.enqueue(encoder.encode("first\n"));
          await new Promise((resolve: (v: unknown) => void): unknown => setTimeout(resolve, STREAM_GAP_MS));
          controller.enqueue(encoder.encode("second\n"));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/plain" } });
    }

    default:
      return new Response("Not Found", { status: 404 });
  }
}

/**
 * @param optionsFor withSession's options for one request; gets the request and whatever extra
 *   arguments the runtime passes (Workers' `env`, `ctx`…).
 * @returns The fetch handler.
 */
export function createApp<Rest extends unknown[]>(
  optionsFor: (req: Request, ...rest: Rest) => AppOptions | Promise<AppOptions>,
): (req: Request, ...rest: Rest) => Promise<Response> {
  // With a generic Rest, withSession's `Longer<Rest, Rest>` stays unresolved: it is Rest.
  return withSession<AppData, Rest>(
    (req: Request, session: Session<AppData>, ..._rest: Rest): Promise<Response> => routes(req, session),
    optionsFor,
  ) as (req: Request, ...rest: Rest) => Promise<Response>;
}
