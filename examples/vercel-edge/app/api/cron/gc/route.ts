// app/api/cron/gc/route.ts: the cron job from vercel.json. Vercel calls it with
// `Authorization: Bearer ${CRON_SECRET}` when CRON_SECRET is set; anything else is refused.
import { PostgresStore } from "pgsession";

export const runtime = "edge";

export async function GET(req: Request): Promise<Response> {
  const secret = process.env.CRON_SECRET;
  if (!secret || req.headers.get("authorization") !== `Bearer ${secret}`) {
    return new Response("Unauthorized", { status: 401 });
  }
  const store = new PostgresStore({
    connectionString: process.env.DATABASE_URL!,
    fetchEndpoint: process.env.DATABASE_HTTP_ENDPOINT,
    table: process.env.SESSION_TABLE,
  });
  // Stay well inside the function's time limit; what is left waits for the next run.
  const result = await store.gc({ batchSize: 1000, maxDurationMs: 20_000, signal: req.signal });
  return Response.json(result);
}
