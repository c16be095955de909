import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { headerReader } from "./request-headers.ts";
import { requestVars } from "./vars.ts";

type NodeBody = {
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  removeAllListeners?(event: string): unknown;
  resume?(): unknown;
  readableDidRead?: boolean;
};

/**
 * The largest body read (JETWAY_MAX_BODY_BYTES overrides it): far above a batch of the bridge's (size ×
 * messages of at most NATS' max_payload, 1 MiB by default, ~100 KiB in practice), and a bound on what a
 * request can make a function hold in memory before its signature is even checked.
 */
export const MAX_BODY_BYTES = 32 * 1024 * 1024;

function maxBody(c: Context): number {
  const asked = requestVars(c).JETWAY_MAX_BODY_BYTES;
  if (asked === undefined) return MAX_BODY_BYTES;
  const bytes = Number(asked);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : MAX_BODY_BYTES;
}

const tooLarge = (limit: number) =>
  new HTTPException(413, { message: `request body over ${limit} bytes (JETWAY_MAX_BODY_BYTES)` });
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
  const limit = maxBody(c);
  if (Number(headerReader(c)("content-length")) > limit) return Promise.reject(tooLarge(limit));
  if (incoming && typeof incoming.on === "function" && incoming.readableDidRead === false && untouched) {
    const read = readStream(incoming, limit);
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
    // Workers and Lambda cap a request body themselves; a chunked one past the limit is refused once read.
    body = c.req.arrayBuffer().then((buffer) => {
      if (buffer.byteLength > limit) throw tooLarge(limit);
      return new Uint8Array(buffer);
    });
  }
  bodies.set(c.req.raw, body);
  return body;
}

/** The request body as UTF-8 text (see readBody). */
export async function readText(c: Context): Promise<string> {
  return decoder.decode(await readBody(c));
}

function readStream(incoming: NodeBody, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    incoming.on("data", (chunk) => {
      size += chunk.length;
      if (size > limit) {
        // Keep nothing more: what still arrives is drained unread so the answer can go out.
        chunks.length = 0;
        incoming.removeAllListeners?.("data");
        incoming.resume?.();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    incoming.on("end", () =>
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)),
    );
    incoming.on("error", reject);
  });
}
