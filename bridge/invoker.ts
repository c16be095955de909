import type { JsMsg } from "@nats-io/jetstream";
import { type Dispatcher, Pool } from "undici";
import { BATCH_CONTENT_TYPE, HEADERS } from "../functions/sdk/contract.ts";
import type { RouteConfig } from "./config.ts";
import type { InvocationResult, TransportErrorKind } from "./outcome.ts";
import { signBody } from "./signer.ts";

/** Enough for a JSON status or error body, and an excerpt for a dead letter. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/**
 * A 2xx JSON body may carry events: read up to NATS' default max_payload so they are not cut off. A body
 * larger still is flagged `truncated` and the outcome table refuses to ack it without its events.
 */
export const MAX_EVENTS_RESPONSE_BYTES = 1024 * 1024;
/** A batch answer carries the events of every message in the batch. */
export const MAX_BATCH_RESPONSE_BYTES = 16 * 1024 * 1024;

/** One invocation's result plus the (capped) response text, kept for dead-letter excerpts. */
export interface Invocation extends InvocationResult {
  text?: string | undefined;
}

/** What the invoker needs to know about the delivery beyond the message itself. */
export interface InvokeTarget {
  id: string;
  stream: string;
  seq: number;
  delivery: number;
}

/** Message headers never forwarded: ours, or ones an HTTP client must own (hop-by-hop, framing). */
const RESERVED = new Set(["content-type", "content-length", "host", "connection", "keep-alive"]);
RESERVED.add("transfer-encoding").add("upgrade").add("expect").add("te").add("trailer");
const isReserved = (name: string) =>
  RESERVED.has(name) || name.startsWith("x-jetway-") || name.startsWith("ce-");

const TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CONNECT_TIMEOUT"]);
TIMEOUT_CODES.add("ETIMEDOUT");
const RESET_CODES = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET"]);

function errorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === "string" ? code : undefined;
}

export function classifyTransportError(error: unknown): TransportErrorKind {
  const code = errorCode(error);
  if (code === undefined) return "other";
  if (TIMEOUT_CODES.has(code)) return "timeout";
  if (code === "ECONNREFUSED") return "refused";
  return RESET_CODES.has(code) ? "reset" : "other";
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

interface BodyText {
  text: string;
  truncated: boolean;
}

async function readCapped(
  body: Dispatcher.ResponseData["body"],
  length: string | undefined,
  limit: number,
): Promise<BodyText> {
  if (length !== undefined && Number(length) <= limit) return { text: await body.text(), truncated: false };
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    // Leaving the loop destroys the stream: a huge body is not worth reading to the end.
    if (size > limit) break;
  }
  return { text: Buffer.concat(chunks).subarray(0, limit).toString("utf8"), truncated: size > limit };
}

/** Only JSON objects can carry events or a Dapr status; anything else is not parsed at all. */
function parseJsonObject(text: string, json: boolean): unknown {
  if (text.length === 0 || !json) return undefined;
  const first = text.trimStart()[0];
  if (first !== "{") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * POSTs messages (or batches) to one route's function over a keep-alive undici Pool (connections ≈
 * concurrency, which counts batches on a batch route).
 * The route-constant headers are built once; per message only the variable ones are appended.
 */
export class Invoker {
  readonly url: string;
  private readonly pool: Pool;
  private readonly path: string;
  private readonly timeoutMs: number;
  private readonly secret: string | undefined;
  private readonly baseHeaders: readonly string[];
  private readonly batchHeaders: readonly string[];

  constructor(route: RouteConfig) {
    const url = new URL(route.url);
    this.url = route.url;
    this.path = `${url.pathname}${url.search}`;
    this.timeoutMs = route.timeout;
    this.secret = route.secret;
    this.pool = new Pool(url.origin, {
      connections: route.concurrency,
      headersTimeout: route.timeout,
      bodyTimeout: route.timeout,
      connectTimeout: Math.min(route.timeout, 10_000),
    });
    const routeHeaders = [
      HEADERS.route,
      route.name,
      HEADERS.stream,
      route.stream,
      HEADERS.maxDeliver,
      String(route.max_deliver),
    ];
    this.baseHeaders = [
      HEADERS.ceSpecVersion,
      "1.0",
      HEADERS.ceSource,
      `jetway://${route.stream}`,
      ...routeHeaders,
    ];
    // Per-message attributes travel inside the structured-mode events of a batch body.
    this.batchHeaders = ["content-type", BATCH_CONTENT_TYPE, ...routeHeaders];
  }

  /** Builds the request headers of one delivery (CloudEvents binary mode + jetway + message headers). */
  headersFor(msg: JsMsg, target: InvokeTarget): string[] {
    const h = this.baseHeaders.slice();
    let contentType = "application/json";
    if (msg.headers) {
      for (const [key, values] of msg.headers) {
        const name = key.toLowerCase();
        if (name === "content-type" && values[0]) contentType = values[0];
        if (isReserved(name)) continue;
        for (const value of values) h.push(name, value);
      }
    }
    h.push("content-type", contentType, HEADERS.ceId, target.id, HEADERS.ceType, msg.subject);
    h.push(HEADERS.ceTime, msg.timestamp, HEADERS.seq, String(target.seq));
    h.push(HEADERS.delivery, String(target.delivery));
    if (this.secret !== undefined) h.push(HEADERS.signature, signBody(this.secret, msg.data));
    return h;
  }

  /** Never throws: transport failures come back as `{ error }` for the outcome table. */
  invoke(msg: JsMsg, target: InvokeTarget): Promise<Invocation> {
    return this.send(this.headersFor(msg, target), msg.data, MAX_EVENTS_RESPONSE_BYTES);
  }

  /** POSTs one batch body (already encoded, see batch.ts), signed over the whole body. Never throws. */
  invokeBatch(body: Uint8Array): Promise<Invocation> {
    const h = this.batchHeaders.slice();
    if (this.secret !== undefined) h.push(HEADERS.signature, signBody(this.secret, body));
    return this.send(h, body, MAX_BATCH_RESPONSE_BYTES);
  }

  private async send(headers: string[], payload: Uint8Array, eventsCap: number): Promise<Invocation> {
    try {
      const response = await this.pool.request({ method: "POST", path: this.path, headers, body: payload });
      const { headers: rh, body, statusCode } = response;
      const length = firstHeader(rh["content-length"]);
      const contentType = firstHeader(rh["content-type"]);
      const json = contentType?.includes("json") === true;
      let read: BodyText = { text: "", truncated: false };
      if (length === "0") await body.dump();
      else {
        const eventsPossible = json && statusCode >= 200 && statusCode < 300;
        read = await readCapped(body, length, eventsPossible ? eventsCap : MAX_RESPONSE_BYTES);
      }
      return {
        status: statusCode,
        body: read.truncated ? undefined : parseJsonObject(read.text, json),
        truncated: json && read.truncated,
        retryAfter: firstHeader(rh["retry-after"]),
        text: read.text.length > MAX_RESPONSE_BYTES ? read.text.slice(0, MAX_RESPONSE_BYTES) : read.text,
      };
    } catch (error) {
      const kind = classifyTransportError(error);
      const message =
        kind === "timeout"
          ? `no response within ${this.timeoutMs}ms`
          : (error as Error).message || String(error);
      return { error: kind, errorMessage: message };
    }
  }

  /** Waits for running requests, then closes the connections. */
  close(): Promise<void> {
    return this.pool.close();
  }

  /** Aborts running requests and closes the connections. */
  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}
