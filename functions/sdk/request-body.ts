import type { Context } from "hono";

type NodeBody = {
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  readableDidRead?: boolean;
};
type NodeBindings = { incoming?: NodeBody };

/** Read once per request; a second reader (the signature check, then the handler) gets the same bytes. */
const bodies = new WeakMap<Request, Promise<Uint8Array>>();
const decoder = new TextDecoder();

/**
 * The request body's bytes. Served by @hono/node-server, `c.env.incoming` is Node's request stream, read
 * directly: `c.req.arrayBuffer()` there first builds a WHATWG Request and a ReadableStream over the same
 * stream, which costs more CPU than the rest of a small delivery. Anywhere else (Workers, Lambda,
 * `app.request` in tests) the Request's own body.
 */
export function readBody(c: Context): Promise<Uint8Array> {
  let body = bodies.get(c.req.raw);
  if (body) return body;
  const incoming = (c.env as NodeBindings | undefined)?.incoming;
  const untouched = Object.keys(c.req.bodyCache).length === 0;
  if (incoming && typeof incoming.on === "function" && incoming.readableDidRead === false && untouched) {
    const read = readStream(incoming);
    body = read;
    // The stream is spent now: hono's own readers (c.req.text(), json()…) answer from these bytes, copied
    // into an ArrayBuffer of their own (Node's chunks are views into larger buffers) only if one asks.
    let copy: Promise<ArrayBuffer> | undefined;
    Object.defineProperty(c.req.bodyCache, "arrayBuffer", {
      enumerable: true,
      configurable: true,
      get: () => (copy ??= read.then((bytes) => new Uint8Array(bytes).buffer)),
    });
  } else {
    body = c.req.arrayBuffer().then((buffer) => new Uint8Array(buffer));
  }
  bodies.set(c.req.raw, body);
  return body;
}

/** The request body as UTF-8 text (see readBody). */
export async function readText(c: Context): Promise<string> {
  return decoder.decode(await readBody(c));
}

function readStream(incoming: NodeBody): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    incoming.on("data", (chunk) => {
      chunks.push(chunk);
      size += chunk.length;
    });
    incoming.on("end", () =>
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)),
    );
    incoming.on("error", reject);
  });
}
