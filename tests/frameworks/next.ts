// The Next.js recipe (README): App Router route handlers, `export async function GET(request)`,
// on the Node.js or the Edge runtime. Next.js is not installed; the contract is the documented
// one: a route handler gets the Web `Request` (a NextRequest, which extends it) and returns a
// Web `Response` (https://nextjs.org/docs/app/api-reference/file-conventions/route).
import type { Sessions } from "../../mod.ts";

export type Data = { user: string; visits: number };

type RouteHandler = (request: Request) => Promise<Response>;

// ---- the recipe: app/api/visits/route.ts, app/api/sign-in/route.ts, app/api/sign-out/route.ts ----
export function makeRoutes(
  sessions: Sessions<Data>,
): { GET: RouteHandler; signIn: RouteHandler; signOut: RouteHandler } {
  // app/api/visits/route.ts
  function GET(request: Request): Promise<Response> {
    return sessions.handle(request, async (session) => {
      const visits = ((await session.get("visits")) ?? 0) + 1;
      session.set("visits", visits);
      return Response.json({ visits, user: (await session.get("user")) ?? null });
    });
  }
  // app/api/sign-in/route.ts: export async function POST(request: Request)
  function signIn(request: Request): Promise<Response> {
    return sessions.handle(request, (session) => {
      const user = new URL(request.url).searchParams.get("user") ?? "anonymous";
      session.regenerate();
      session.set("user", user);
      return Response.json({ user });
    });
  }
  // app/api/sign-out/route.ts: export async function POST(request: Request)
  function signOut(request: Request): Promise<Response> {
    return sessions.handle(request, (session) => {
      session.destroy();
      return new Response(null, { status: 204 });
    });
  }
  return { GET, signIn, signOut };
}
