import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";

/**
 * An HTTP pass-through that can hold requests: while held they wait, as a delivery would behind a table
 * lock, and go on when released. It lets a system test make one function answer after another on either
 * database — embedded PGlite has a single session, so no other connection can hold a lock for the test.
 */
export class HoldGate {
  readonly url: string;
  readonly #server: ServerType;
  #open: Promise<void> = Promise.resolve();
  #release: (() => void) | undefined;

  private constructor(url: string, server: ServerType) {
    this.url = url;
    this.#server = server;
  }

  /** `target()` is the base URL requests go on to, resolved per request (it may not be known yet). */
  static start(target: () => string): Promise<HoldGate> {
    return new Promise((resolve) => {
      let gate: HoldGate | undefined;
      const forward = async (req: Request): Promise<Response> => {
        if (gate) await gate.#open;
        const { pathname, search } = new URL(req.url);
        const headers = new Headers(req.headers);
        for (const name of ["host", "connection", "content-length"]) headers.delete(name);
        const body = req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer();
        return fetch(`${target()}${pathname}${search}`, { method: req.method, headers, body });
      };
      const server = serve({ fetch: forward, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
        gate = new HoldGate(`http://127.0.0.1:${info.port}`, server);
        resolve(gate);
      });
    });
  }

  /** Requests from now on wait until release(). */
  hold(): void {
    if (this.#release) return;
    this.#open = new Promise((resolve) => {
      this.#release = resolve;
    });
  }

  release(): void {
    this.#release?.();
    this.#release = undefined;
  }

  close(): Promise<void> {
    this.release();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
