import type { IncomingMessage } from "node:http";
import type { Context } from "hono";

/*
 * The ingress's view of a request. Served by @hono/node-server, `c.env.incoming` is Node's own request:
 * its headers are already parsed into an object and its body is a plain stream. Going through
 * `c.req.raw` instead makes the adapter build a WHATWG Request, a Headers list and a ReadableStream over
 * the body first — about a third of the bridge's CPU per ingress publish. Under `app.request()` (tests)
 * and any other runtime, the Request itself.
 */

export interface RequestView {
  /** One header by lower-case name; several values joined with ", " as Headers.get does. */
  header(name: string): string | undefined;
  /** The whole body, or `tooLarge()` thrown as soon as more than `limit` bytes arrived. */
  body(limit: number, tooLarge: () => Error): Promise<Uint8Array>;
}

type NodeBindings = { incoming?: IncomingMessage };

export function requestView(c: Context): RequestView {
  const incoming = (c.env as NodeBindings | undefined)?.incoming;
  if (incoming && typeof incoming.on === "function" && incoming.headers) {
    return {
      header(name) {
        const value = incoming.headers[name];
        return Array.isArray(value) ? value.join(", ") : value;
      },
      body: (limit, tooLarge) => readIncoming(incoming, limit, tooLarge),
    };
  }
  return {
    header: (name) => c.req.header(name),
    body: (limit, tooLarge) => readCapped(c.req.raw, limit, tooLarge),
  };
}

/** Node's request body; stops reading (and leaves the rest unread) once it passes the limit. */
function readIncoming(incoming: IncomingMessage, limit: number, tooLarge: () => Error): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        incoming.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      done();
      reject(error);
    };
    incoming.on("data", onData);
    incoming.on("end", onEnd);
    incoming.on("error", onError);
  });
}

/** A WHATWG body, read the same way: a chunked upload without Content-Length cannot flood memory. */
async function readCapped(req: Request, limit: number, tooLarge: () => Error): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}
