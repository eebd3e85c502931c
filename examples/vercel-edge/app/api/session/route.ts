// app/api/session/route.ts in a Next.js project on Vercel, running on the Edge runtime.
// Env: DATABASE_URL (Neon), SESSION_SECRET (at least 32 characters), SESSION_TABLE (optional);
// locally (.env.local) DATABASE_HTTP_ENDPOINT, the `/sql` URL `npx pgsession dev-proxy` prints.
import { withSession } from "pgsession";

export const runtime = "edge";

/** What this route keeps in a session. */
interface Data {
  visits: number;
}

export const GET = withSession<Data>(
  async (_req, session) => {
    const visits = ((await session.get("visits")) ?? 0) + 1;
    session.set("visits", visits);
    return Response.json({ visits });
  },
  // A function, so the environment is read per request, never at import time.
  () => ({
    store: {
      connectionString: process.env.DATABASE_URL!,
      fetchEndpoint: process.env.DATABASE_HTTP_ENDPOINT,
      table: process.env.SESSION_TABLE,
    },
    secrets: [process.env.SESSION_SECRET!],
    // Secure (and the __Host- name) on Vercel's https, still usable on `next dev`'s http.
    cookie: { secure: "auto" },
  }),
);
