// The load generator of the session benchmark, in its own process: reads one JSON command per
// line on stdin, runs autocannon, answers one JSON line on stdout. Each request carries the next
// cookie of the list, so the load rotates through the seeded sessions.
//
// Command: { url, cookies: string[], connections, seconds }.
// Answer: { requests, rps, p50Ms, p99Ms, errors, non2xx }.
import process from "node:process";
import readline from "node:readline";
import autocannon from "autocannon";

interface Command {
  url: string;
  cookies: string[];
  connections: number;
  seconds: number;
}

async function run(cmd: Command): Promise<Record<string, number>> {
  let next = 0;
  const result = await autocannon({
    url: cmd.url,
    connections: cmd.connections,
    duration: cmd.seconds,
    requests: [{
      setupRequest(req: { headers?: Record<string, string> }) {
        req.headers = { ...req.headers, cookie: cmd.cookies[next++ % cmd.cookies.length]! };
        return req;
      },
    }],
  } as autocannon.Options);
  return {
    requests: result.requests.total,
    rps: Math.round(result.requests.total / (result.duration || cmd.seconds)),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const answer = await run(JSON.parse(line) as Command);
  process.stdout.write(JSON.stringify(answer) + "\n");
}
