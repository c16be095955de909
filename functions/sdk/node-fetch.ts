import { STATUS_CODES } from "node:http";
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from "node:zlib";
import { Agent, request } from "undici";

/** Statuses whose response has no body (fetch refuses to build one with a body). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const REDIRECT = new Set([301, 302, 303, 307, 308]);
/** fetch's limit on redirects followed for one call. */
const MAX_REDIRECTS = 20;
/** Headers that describe a request body: gone with the body when a redirect turns the request into a GET. */
const BODY_HEADERS = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "content-language",
  "content-location",
]);

export interface NodeFetchOptions {
  /** Keep-alive connections per origin, which is also the most requests open to one origin (default 64). */
  connections?: number;
}

type Body = string | Uint8Array | null | undefined;
const isPlainBody = (body: unknown): body is Body =>
  body === undefined || body === null || typeof body === "string" || body instanceof Uint8Array;

function plainHeaders(headers: RequestInit["headers"]): Record<string, string> | string[] | undefined {
  if (headers === undefined) return undefined;
  if (headers instanceof Headers) return Object.fromEntries(headers);
  if (Array.isArray(headers)) return headers.flat();
  return headers as Record<string, string>;
}

type RawHeaders = Record<string, string | string[] | undefined>;

function toHeaders(raw: RawHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.append(name, value);
  }
  return headers;
}

const utf8 = new TextDecoder();
type WithBytes = { bytes(): Promise<Uint8Array> };

/** Response as a class to extend: its type declares the members as fields, which accessors may not override. */
type ResponseClass = new (
  body: ConstructorParameters<typeof Response>[0],
  init: ResponseInit,
) => { readonly status: number };

/**
 * The platform's own Response class, also where a server adapter has put one of its own in the global
 * (@hono/node-server does: its instances hand all but the basics, clone() included, to a platform Response).
 * A subclass of the adapter's class would be sent from the adapter's own cache, without this one's headers
 * and body, when a handler returns it.
 */
const PlatformResponse = Object.getPrototypeOf(new Response(null).clone()).constructor as ResponseClass;

/**
 * A Response over a body already read. Node's Response wraps a body in a web stream and the headers in a
 * Headers object up front, ~13% of the payment function's busy time for a gateway call whose caller reads
 * `status` and `json()`. Here `headers` and the stream are built when first asked for, and `text()`,
 * `json()`, `arrayBuffer()` and `bytes()` read the bytes directly; anything else gets a full Response built
 * from them. It is still a Response (`instanceof`, `ok`, `status`), and a body reads once, as fetch's does.
 * The accessors live on the class: defined on each instance, they cost ~10 µs a call.
 */
class BufferedResponse extends PlatformResponse {
  #raw: RawHeaders;
  #bytes: ArrayBuffer | null;
  #headers: Headers | undefined;
  #full: Response | undefined;
  #spent: ReadableStream<Uint8Array> | undefined;
  #used = false;

  #url: string;
  #redirected: boolean;

  constructor(status: number, raw: RawHeaders, body: ArrayBuffer | null, url: string, redirected: boolean) {
    super(null, { status });
    this.#raw = raw;
    this.#bytes = body;
    this.#url = url;
    this.#redirected = redirected;
  }

  get url(): string {
    return this.#url;
  }
  get redirected(): boolean {
    return this.#redirected;
  }
  get statusText(): string {
    return STATUS_CODES[this.status] ?? "";
  }

  #headersOf(): Headers {
    this.#headers ??= toHeaders(this.#raw);
    return this.#headers;
  }

  #materialised(): Response {
    if (!this.#full) {
      if (this.#used) throw new TypeError("Body is unusable: Body has already been read");
      const init = { status: this.status, headers: this.#headersOf() };
      this.#full = new PlatformResponse(this.#bytes, init) as Response;
    }
    return this.#full;
  }

  /** What fetch's `body` is once read: a stream still there (the same one each time), locked, spent. */
  #spentBody(): ReadableStream<Uint8Array> {
    if (!this.#spent) {
      const spent = new PlatformResponse(new Uint8Array(0), { status: 200 }) as Response;
      void spent.arrayBuffer();
      this.#spent = spent.body as ReadableStream<Uint8Array>;
    }
    return this.#spent;
  }

  #take(): ArrayBuffer {
    if (this.#used) throw new TypeError("Body is unusable: Body has already been read");
    this.#used = true;
    return this.#bytes ?? new ArrayBuffer(0);
  }

  get headers(): Headers {
    return this.#full?.headers ?? this.#headersOf();
  }
  get body(): ReadableStream<Uint8Array> | null {
    if (this.#full) return this.#full.body;
    if (this.#bytes === null) return null;
    return this.#used ? this.#spentBody() : this.#materialised().body;
  }
  get bodyUsed(): boolean {
    return this.#full ? this.#full.bodyUsed : this.#used;
  }
  async text(): Promise<string> {
    return this.#full ? this.#full.text() : utf8.decode(this.#take());
  }
  async json(): Promise<unknown> {
    return this.#full ? this.#full.json() : (JSON.parse(utf8.decode(this.#take())) as unknown);
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    return this.#full ? this.#full.arrayBuffer() : this.#take();
  }
  // Response.bytes() (Node 22) is not in TypeScript's lib yet.
  async bytes(): Promise<Uint8Array> {
    return this.#full ? (this.#full as Response & WithBytes).bytes() : new Uint8Array(this.#take());
  }
  blob(): Promise<Blob> {
    return this.#materialised().blob();
  }
  formData(): Promise<FormData> {
    return this.#materialised().formData();
  }
  clone(): Response {
    return this.#materialised().clone();
  }
}

/** The body as fetch hands it over: decoded as its Content-Encoding says (last applied, first undone). */
function decoded(body: ArrayBuffer, encoding: string | string[] | undefined): ArrayBuffer {
  if (encoding === undefined) return body;
  const codings = (Array.isArray(encoding) ? encoding.join(",") : (encoding ?? ""))
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity");
  let bytes: Uint8Array = new Uint8Array(body);
  for (const coding of codings.reverse()) {
    if (coding === "gzip" || coding === "x-gzip") bytes = gunzipSync(bytes);
    else if (coding === "br") bytes = brotliDecompressSync(bytes);
    else if (coding === "deflate") {
      try {
        bytes = inflateSync(bytes);
      } catch {
        bytes = inflateRawSync(bytes);
      }
    } else return body;
  }
  return codings.length === 0
    ? body
    : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
}

/** The request a 3xx asks for next, as fetch follows it. */
function redirected(
  url: URL,
  status: number,
  location: string,
  method: string,
  init: RequestInit,
): [URL, RequestInit] {
  const next = new URL(location, url);
  const headers = new Headers(init.headers);
  let nextInit: RequestInit = init;
  // 303, and 301/302 after a POST, become a GET without the body (as fetch and browsers do).
  if (
    (status === 303 && method !== "GET" && method !== "HEAD") ||
    ((status === 301 || status === 302) && method === "POST")
  ) {
    for (const name of BODY_HEADERS) headers.delete(name);
    nextInit = { ...init, method: "GET", body: undefined };
  }
  // Credentials stay with their origin.
  if (next.origin !== url.origin) headers.delete("authorization");
  return [next, { ...nextInit, headers }];
}

/**
 * A fetch for Node hosts, on undici's request(): the global fetch spends ~6× the CPU per call (a small
 * JSON POST here: ~250 µs against ~40) building WHATWG request, stream and response objects. It takes the
 * calls function code makes to HTTP APIs — a URL, a string or bytes body, plain headers, a signal — and
 * hands anything else (a Request object, a stream or form body, a redirect to follow) to the global fetch,
 * so callers see fetch's behaviour either way. Node entries pass it to the functions that call out
 * (payment's gateway, order's publish); Workers keep their platform fetch.
 */
export function createNodeFetch(options: NodeFetchOptions = {}): typeof fetch {
  const dispatcher = new Agent({ connections: options.connections ?? 64 });
  const nodeFetch = (input: Parameters<typeof fetch>[0], init: RequestInit = {}): Promise<Response> => {
    if (!(typeof input === "string" || input instanceof URL) || !isPlainBody(init.body)) {
      return fetch(input, init);
    }
    return send(input instanceof URL ? input : new URL(input), init, 0);
  };
  const send = async (url: URL, init: RequestInit, redirects: number): Promise<Response> => {
    const method = (init.method ?? "GET").toUpperCase();
    let status: number;
    let raw: Record<string, string | string[] | undefined>;
    let body: ArrayBuffer | null;
    try {
      const res = await request(url, {
        method: method as "GET",
        headers: plainHeaders(init.headers),
        body: (init.body as Body) ?? undefined,
        signal: init.signal ?? undefined,
        dispatcher,
      });
      status = res.statusCode;
      raw = res.headers;
      const location = raw.location;
      if (REDIRECT.has(status) && typeof location === "string" && init.redirect !== "manual") {
        // Followed from this answer: the request is never sent to the first URL again.
        await res.body.dump();
        if (init.redirect === "error") throw new Error("unexpected redirect");
        if (redirects >= MAX_REDIRECTS) throw new Error("redirect count exceeded");
        const [next, nextInit] = redirected(url, status, location, method, init);
        return await send(next, nextInit, redirects + 1);
      }
      body = NULL_BODY.has(status) || method === "HEAD" ? null : await res.body.arrayBuffer();
      if (body === null) await res.body.dump();
      else body = decoded(body, raw["content-encoding"]);
    } catch (cause) {
      // fetch rejects with the signal's reason when aborted (a TimeoutError for AbortSignal.timeout),
      // and with TypeError("fetch failed") carrying the cause otherwise.
      if (init.signal?.aborted) throw init.signal.reason;
      if (cause instanceof TypeError && cause.message === "fetch failed") throw cause;
      throw new TypeError("fetch failed", { cause });
    }
    return new BufferedResponse(status, raw, body, url.href, redirects > 0) as unknown as Response;
  };
  return nodeFetch as typeof fetch;
}
