// A fetch handler served by Node's `http` module: a small IncomingMessage → Request and
// Response → ServerResponse bridge. Bodies stream both ways, and every Set-Cookie header survives
// (Headers joins most repeated headers with ", ", which would corrupt cookies).
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";

export type FetchHandler = (req: Request) => Response | Promise<Response>;

export interface NodeServer {
  /** e.g. `http://127.0.0.1:PORT` */
  url: string;
  close(): Promise<void>;
}

/** Builds a web Request from a Node request; the body is streamed, not buffered. */
export function toWebRequest(req: http.IncomingMessage, signal: AbortSignal): Request {
  const host: string = req.headers.host ?? "localhost";
  const url: string = new URL(req.url ?? "/", `http://${host}`).href;
  const headers: Headers = new Headers();
  for (let i: number = 0; i < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  const method: string = req.method ?? "GET";
  const hasBody: boolean = method !== "GET" && method !== "HEAD";
  return new Request(url, {
    method,
    headers,
    signal,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : null,
    // Required by undici for a stream body.
    duplex: "half",
  } as RequestInit);
}

/** Writes a web Response to a Node response, chunk by chunk, honouring back-pressure. */
export async function sendWebResponse(response: Response, res: http.ServerResponse): Promise<void> {
  res.statusCode = response.status;
  if (response.statusText) res.statusMessage = response.statusText;
  for (const [name, value] of response.headers) {
    if (name !== "set-cookie") res.setHeader(name, value);
  }
  const cookies: string[] = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  if (response.body === null) {
    res.end();
    return;
  }
  // Headers go out now, so a slow stream's first chunk is not held back.
  res.flushHeaders();
  const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
  const onClose = (): void => {
    if (!res.writableFinished) reader.cancel().catch((): void => {});
  };
  res.once("close", onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (res.destroyed) return;
      if (!res.write(value)) {
        await new Promise<void>((resolve: () => void): void => {
          const settle = (): void => {
            res.off("drain", settle);
            res.off("close", settle);
            resolve();
          };
          res.on("drain", settle);
          res.on("close", settle);
        });
      }
    }
    res.end();
  } finally {
    res.off("close", onClose);
    reader.releaseLock();
  }
}

/** Serves `handler` on 127.0.0.1 at a free port. */
export async function serveNode(handler: FetchHandler): Promise<NodeServer> {
  const server: http.Server = http.createServer((req: http.IncomingMessage, res: http.ServerResponse): void => {
    const aborter: AbortController = new AbortController();
    res.once("close", (): void => {
      if (!res.writableFinished) aborter.abort();
    });
    (async (): Promise<void> => {
      let response: Response;
      try {
        response = await handler(toWebRequest(req, aborter.signal));
      } catch (error) {
        console.error("node_server: handler threw", error);
        response = new Response("Internal Server Error", { status: 500 });
      }
      await sendWebResponse(response, res);
    })().catch((error: unknown): void => {
      console.error("node_server: cannot send response", error);
      res.destroy();
    });
  });
  await new Promise<void>((resolve: () => void, reject: (e: Error) => void): void => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: (): Promise<void> => {
      server.closeAllConnections();
      return new Promise<void>((resolve: () => void): void => {
        server.close((): void => resolve());
      });
    },
  };
}
