import type { JsMsg } from "@nats-io/jetstream";
import { type Dispatcher, Pool } from "undici";
import { BATCH_CONTENT_TYPE, HEADERS } from "../functions/sdk/contract.ts";
import type { RouteConfig } from "./config.ts";
import { ceTime } from "./iso-time.ts";
import type { InvocationResult, TransportErrorKind } from "./outcome.ts";
import { signBody, signDeliveryBody } from "./signer.ts";
import { functionTls } from "./tls-files.ts";

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
  /** The trace context to pass on, when set: it replaces the message's own `traceparent` (telemetry.ts). */
  traceparent?: string | undefined;
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

/** The SDK's answer to a message it handled without emitting anything: the common case, not parsed. */
const SDK_NO_EVENTS_TEXT = '{"events":[]}';
const SDK_NO_EVENTS: unknown = Object.freeze({ events: Object.freeze([]) });

/** A JSON body that opens as an object and does not parse: whatever events it meant to carry are unknown. */
const MALFORMED: unique symbol = Symbol("malformed JSON");

/** Only JSON objects can carry events or a Dapr status; anything else is not parsed at all. */
function parseJsonObject(text: string, json: boolean): unknown {
  if (text.length === 0 || !json) return undefined;
  if (text === SDK_NO_EVENTS_TEXT) return SDK_NO_EVENTS;
  const first = text.trimStart()[0];
  if (first !== "{") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return MALFORMED;
  }
}

/** As a function's HTTP stack would read it: padding trimmed, a media type's case ignored. */
const isBatchType = (contentType: string) =>
  contentType.trimStart().toLowerCase().startsWith(BATCH_CONTENT_TYPE);

/** Bodies are decoded as `Response.text()` does: a leading UTF-8 BOM is skipped, with or without a length. */
const hasBom = (b: Buffer) => b.length > 2 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;

function transportFailure(error: unknown, timeoutMs: number): Invocation {
  const kind = classifyTransportError(error);
  const message =
    kind === "timeout" ? `no response within ${timeoutMs}ms` : (error as Error).message || String(error);
  return { error: kind, errorMessage: message };
}

/**
 * Reads one response straight off undici's dispatch callbacks: status, the three headers the outcome
 * needs (first occurrence of each), and the body up to a cap. No response stream, no parsed header
 * object: on the single-message path those cost more than the rest of the request.
 * A body with a Content-Length within the cap is decoded whole; any other body is read up to the cap, and
 * one going past it ends the request (the connection is dropped) as `truncated`. A UTF-8 BOM is skipped.
 */
class ResponseReader implements Dispatcher.DispatchHandler {
  private readonly eventsCap: number;
  private readonly timeoutMs: number;
  private readonly resolve: (invocation: Invocation) => void;
  private abort: ((error?: Error) => void) | undefined;
  private status = 0;
  private length: string | undefined;
  private retryAfter: string | undefined;
  private json = false;
  private limit = MAX_RESPONSE_BYTES;
  /** Content-Length is within the cap: the whole body is read and decoded as one text. */
  private whole = false;
  private chunks: Buffer[] = [];
  private size = 0;
  private settled = false;

  constructor(eventsCap: number, timeoutMs: number, resolve: (invocation: Invocation) => void) {
    this.eventsCap = eventsCap;
    this.timeoutMs = timeoutMs;
    this.resolve = resolve;
  }

  onConnect(abort: (error?: Error) => void): void {
    this.abort = abort;
  }

  onHeaders(statusCode: number, raw: Buffer[]): boolean {
    // 1xx: informational, the real answer follows.
    if (statusCode < 200) return true;
    this.status = statusCode;
    let contentType: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as Buffer;
      // Only content-length (14), content-type (12) and retry-after (11) matter here.
      if (name.length !== 14 && name.length !== 12 && name.length !== 11) continue;
      const key = name.toString("latin1").toLowerCase();
      const value = (raw[i + 1] as Buffer).toString("latin1");
      if (key === "content-length") this.length ??= value;
      else if (key === "content-type") contentType ??= value;
      else if (key === "retry-after") this.retryAfter ??= value;
    }
    this.json = contentType?.includes("json") === true;
    this.limit = this.json && statusCode < 300 ? this.eventsCap : MAX_RESPONSE_BYTES;
    this.whole = this.length !== undefined && Number(this.length) <= this.limit;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.whole || this.size <= this.limit) return true;
    // A huge body is not worth reading to the end: one byte past the cap says "truncated".
    this.finish(true);
    const abort = this.abort;
    // Outside the parser's callback, as dropping a response stream would.
    queueMicrotask(() => abort?.(new Error("response body over the cap")));
    return false;
  }

  onComplete(): void {
    this.finish(false);
  }

  onError(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(transportFailure(error, this.timeoutMs));
  }

  private finish(truncated: boolean): void {
    if (this.settled) return;
    this.settled = true;
    const { chunks, json } = this;
    let text = "";
    if (chunks.length > 0 && this.length !== "0") {
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      const end = this.whole ? body.length : Math.min(body.length, this.limit);
      text = body.toString("utf8", hasBom(body) ? 3 : 0, end);
    }
    this.chunks = [];
    const body = truncated ? undefined : parseJsonObject(text, json);
    this.resolve({
      status: this.status,
      body: body === MALFORMED ? undefined : body,
      truncated: json && truncated,
      malformed: body === MALFORMED,
      retryAfter: this.retryAfter,
      text: text.length > MAX_RESPONSE_BYTES ? text.slice(0, MAX_RESPONSE_BYTES) : text,
    });
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
      ...(route.tls && { connect: functionTls(route) }),
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
        if (name === "content-type" && values[0] && !isBatchType(values[0])) {
          // A message is one event: claiming to be a batch, it would be read as events of the producer's making.
          contentType = values[0];
        }
        if (isReserved(name) || (name === "traceparent" && target.traceparent !== undefined)) continue;
        for (const value of values) h.push(name, value);
      }
    }
    h.push("content-type", contentType, HEADERS.ceId, target.id, HEADERS.ceType, msg.subject);
    h.push(HEADERS.ceTime, ceTime(msg), HEADERS.seq, String(target.seq));
    h.push(HEADERS.delivery, String(target.delivery));
    if (target.traceparent !== undefined) h.push("traceparent", target.traceparent);
    if (this.secret !== undefined) {
      const identity = { id: target.id, type: msg.subject };
      h.push(HEADERS.signature, signDeliveryBody(this.secret, identity, msg.data));
    }
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

  private send(headers: string[], payload: Uint8Array, eventsCap: number): Promise<Invocation> {
    return new Promise((resolve) => {
      const reader = new ResponseReader(eventsCap, this.timeoutMs, resolve);
      this.pool.dispatch({ method: "POST", path: this.path, headers, body: payload }, reader);
    });
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
