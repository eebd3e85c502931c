// The same Worker with only the Neon driver: one query per request, no sessions. The difference
// between the two bundles is pgsession's own cost (with cbor-x).
import { neon } from "@neondatabase/serverless";

interface Env {
  DATABASE_URL: string;
}

export default {
  async fetch(_req: Request, env: Env): Promise<Response> {
    const sql = neon(env.DATABASE_URL);
    const rows = await sql.query("SELECT session_data FROM session WHERE session_key = $1", ["k"]);
    return new Response(`rows ${rows.length}`);
  },
};
