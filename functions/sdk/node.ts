import { type ServerType, serve } from "@hono/node-server";
import type { Hono } from "hono";
import type { Logger } from "pino";
import { createFunctionLogger } from "./logger.ts";

export { createNodeFetch, type NodeFetchOptions } from "./node-fetch.ts";

export interface ServeNodeOptions {
  port: number;
  hostname?: string;
  /** Default: a pino logger named `node`. */
  logger?: Logger;
  /** How long in-flight requests may take to finish after SIGTERM/SIGINT (ms). Default 10 s. */
  gracePeriodMs?: number;
}

export interface NodeFunctionServer {
  server: ServerType;
  /** Resolves once listening; `port` is the bound port (useful with port 0). */
  ready: Promise<{ port: number }>;
  /** Stops accepting, waits for in-flight requests (up to the grace period), then resolves. */
  close(): Promise<void>;
}

/**
 * Serves a function on Node. The first SIGTERM/SIGINT stops accepting and lets in-flight deliveries
 * finish (the bridge retries whatever we do not answer); a second signal, or the grace period running
 * out, exits at once.
 */
export function serveNode(app: { fetch: Hono["fetch"] }, options: ServeNodeOptions): NodeFunctionServer {
  const log = options.logger ?? createFunctionLogger("node");
  const gracePeriodMs = options.gracePeriodMs ?? 10_000;
  let onReady: (info: { port: number }) => void = () => {};
  const ready = new Promise<{ port: number }>((resolve) => {
    onReady = resolve;
  });
  const server = serve(
    { fetch: app.fetch, port: options.port, hostname: options.hostname ?? "0.0.0.0" },
    (info) => {
      log.info({ port: info.port }, "function listening");
      onReady({ port: info.port });
    },
  );

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      // Keep-alive sockets would hold close() open until they time out; drop the idle ones now.
      if ("closeIdleConnections" in server) server.closeIdleConnections();
    });
    return closing;
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      log.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    log.info({ signal, grace_period_ms: gracePeriodMs }, "shutting down");
    const timer = setTimeout(() => {
      log.warn("grace period over: exiting with requests in flight");
      process.exit(1);
    }, gracePeriodMs);
    timer.unref();
    close().then(
      () => {
        log.info("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, "close failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  server.on("close", () => {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  });
  return { server, ready, close };
}
