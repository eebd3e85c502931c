// The routes of tests/runtimes/app.ts as a Hono app on pgsession/hono, so the shared scenario
// (tests/runtimes/scenario.ts) runs against the Hono middleware unchanged. Web standards only.
import type { Hono } from "hono";
import { SessionError } from "../../mod.ts";
import type { SessionEnv } from "../../src/hono.ts";
import { type AppData, BIG, BYTES, type Me, SINCE, STREAM_GAP_MS } from "./app.ts";

/** Adds the scenario's routes, and an onError that answers a SessionError with 503. */
export function addRoutes<B extends object>(
  app: Hono<{ Bindings: B } & SessionEnv<AppData>>,
): Hono<{ Bindings: B } & SessionEnv<AppData>> {
  app.get("/health", (c) => c.text("ok"));

  app.post("/login", (c) => {
    const session = c.var.session;
    const user: string = c.req.query("user") ?? "anonymous";
    session.regenerate();
    session.set("user", user);
    session.set("since", SINCE);
    session.set("roles", new Set(["admin", "dev"]));
    session.set("big", BIG);
    session.set("bytes", BYTES);
    session.flash("notice", `Welcome, ${user}`);
    // An unrelated cookie, set the Hono way: both Set-Cookie headers must survive.
    c.header("set-cookie", "theme=dark; Path=/; SameSite=Lax", { append: true });
    return c.json({ user });
  });

  app.get("/me", async (c) => {
    const session = c.var.session;
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
    return c.json(me);
  });

  app.post("/visit", async (c) => {
    const visits: number = ((await c.var.session.get("visits")) ?? 0) + 1;
    c.var.session.set("visits", visits);
    return c.json({ visits });
  });

  app.post("/logout", (c) => {
    c.var.session.destroy();
    return c.body(null, 204);
  });

  app.post("/echo", (c) => new Response(c.req.raw.body, { headers: { "content-type": "application/octet-stream" } }));

  app.get("/stream", () => {
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
  });

  app.onError((error, c) => {
    if (error instanceof SessionError) return c.text(`session error ${error.code}`, 503);
    return c.text(`error: ${error.message}`, 500);
  });
  return app;
}

export type { AppData };
