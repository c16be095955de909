import { Agent, request } from "undici";

/** Statuses whose response has no body (fetch refuses to build one with a body). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const REDIRECT = new Set([301, 302, 303, 307, 308]);

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

  constructor(status: number, raw: RawHeaders, body: ArrayBuffer | null) {
    super(null, { status });
    this.#raw = raw;
    this.#bytes = body;
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
  const nodeFetch = async (input: Parameters<typeof fetch>[0], init: RequestInit = {}): Promise<Response> => {
    if (!(typeof input === "string" || input instanceof URL) || !isPlainBody(init.body)) {
      return fetch(input, init);
    }
    const method = (init.method ?? "GET").toUpperCase();
    let status: number;
    let raw: Record<string, string | string[] | undefined>;
    let body: ArrayBuffer | null;
    try {
      const res = await request(input, {
        method: method as "GET",
        headers: plainHeaders(init.headers),
        body: init.body ?? undefined,
        signal: init.signal ?? undefined,
        dispatcher,
      });
      status = res.statusCode;
      raw = res.headers;
      if (REDIRECT.has(status) && raw.location !== undefined && init.redirect !== "manual") {
        await res.body.dump();
        return fetch(input, init);
      }
      body = NULL_BODY.has(status) || method === "HEAD" ? null : await res.body.arrayBuffer();
      if (body === null) await res.body.dump();
    } catch (cause) {
      // fetch rejects with the signal's reason when aborted (a TimeoutError for AbortSignal.timeout),
      // and with TypeError("fetch failed") carrying the cause otherwise.
      if (init.signal?.aborted) throw init.signal.reason;
      throw new TypeError("fetch failed", { cause });
    }
    return new BufferedResponse(status, raw, body) as unknown as Response;
  };
  return nodeFetch as typeof fetch;
}
