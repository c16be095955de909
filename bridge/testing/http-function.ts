import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the function received. */
export interface RecordedRequest {
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** performance.now() on arrival. */
  at: number;
}

/** What the scripted function answers; "reset" drops the connection without a response. */
export type Reply =
  | { status: number; headers?: Record<string, string>; body?: unknown; delayMs?: number }
  | "reset";

/** Decides the reply to the n-th request (0-based) — each test scripts its own function. */
export type Script = (request: RecordedRequest, n: number) => Reply | Promise<Reply>;

const ok: Script = () => ({ status: 200 });

/** A local HTTP function for tests: records every request and answers as the current script says. */
export class HttpFunction {
  readonly requests: RecordedRequest[] = [];
  script: Script;
  /** Highest number of requests that were being answered at the same time. */
  maxConcurrent = 0;
  private active = 0;
  private readonly server: Server;

  private constructor(server: Server, script: Script) {
    this.server = server;
    this.script = script;
  }

  static async start(script: Script = ok): Promise<HttpFunction> {
    const server = createServer();
    const fn = new HttpFunction(server, script);
    server.on("request", (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", async () => {
        const request = { headers: req.headers, body: Buffer.concat(chunks), at: performance.now() };
        const n = fn.requests.push(request) - 1;
        fn.active++;
        fn.maxConcurrent = Math.max(fn.maxConcurrent, fn.active);
        try {
          const reply = await fn.script(request, n);
          if (reply === "reset") {
            req.socket.destroy();
            return;
          }
          if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
          const text =
            reply.body === undefined
              ? ""
              : typeof reply.body === "string"
                ? reply.body
                : JSON.stringify(reply.body);
          const type = typeof reply.body === "string" ? "text/plain" : "application/json";
          res.writeHead(reply.status, { "content-type": type, ...reply.headers });
          res.end(text);
        } finally {
          fn.active--;
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return fn;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/invoke`;
  }

  /** Requests whose header `name` equals `value`. */
  withHeader(name: string, value: string): RecordedRequest[] {
    return this.requests.filter((r) => r.headers[name] === value);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Polls until `check` returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
