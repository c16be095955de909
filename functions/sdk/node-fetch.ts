import { Agent, request } from "undici";

/** Statuses whose response has no body (fetch refuses to build one with a body). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const REDIRECT = new Set([301, 302, 303, 307, 308]);

export interface NodeFetchOptions {
  /** Keep-alive connections per origin (default 64). */
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

/**
 * A Response over a body already read. Node's Response wraps a body in a web stream and the headers in a
 * Headers object up front, ~13% of the payment function's busy time for a gateway call whose caller reads
 * `status` and `json()`. Here `headers` and the stream are built when first asked for, and `text()`,
 * `json()`, `arrayBuffer()` and `bytes()` read the bytes directly; anything else gets a full Response built
 * from them. It is still a Response (`instanceof`, `ok`, `status`), and a body reads once, as fetch's does.
 */
function bufferedResponse(status: number, raw: RawHeaders, body: ArrayBuffer | null): Response {
  const res = new Response(null, { status });
  let headers: Headers | undefined;
  let full: Response | undefined;
  let used = false;
  const headersOf = () => {
    headers ??= toHeaders(raw);
    return headers;
  };
  const materialised = (): Response => {
    if (!full) {
      if (used) throw new TypeError("Body is unusable: Body has already been read");
      full = new Response(body, { status, headers: headersOf() });
    }
    return full;
  };
  const take = (): ArrayBuffer => {
    if (used) throw new TypeError("Body is unusable: Body has already been read");
    used = true;
    return body ?? new ArrayBuffer(0);
  };
  const read =
    <T>(direct: (bytes: ArrayBuffer) => T, viaFull: (r: Response) => Promise<T>) =>
    async (): Promise<T> =>
      full ? viaFull(full) : direct(take());
  Object.defineProperties(res, {
    headers: { get: () => full?.headers ?? headersOf() },
    body: { get: () => (body === null && !full ? null : materialised().body) },
    bodyUsed: { get: () => (full ? full.bodyUsed : used) },
    text: {
      value: read(
        (b) => utf8.decode(b),
        (r) => r.text(),
      ),
    },
    json: {
      value: read(
        (b) => JSON.parse(utf8.decode(b)) as unknown,
        (r) => r.json(),
      ),
    },
    arrayBuffer: {
      value: read(
        (b) => b,
        (r) => r.arrayBuffer(),
      ),
    },
    // Response.bytes() (Node 22) is not in TypeScript's lib yet.
    bytes: {
      value: read(
        (b) => new Uint8Array(b),
        (r) => (r as Response & WithBytes).bytes(),
      ),
    },
    blob: { value: () => materialised().blob() },
    formData: { value: () => materialised().formData() },
    clone: { value: () => materialised().clone() },
  });
  return res;
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
    return bufferedResponse(status, raw, body);
  };
  return nodeFetch as typeof fetch;
}
