import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { type Context, Hono } from "hono";
import type pino from "pino";
import { handlePublish, handlePublishBatch, type IngressDeps, IngressError } from "./ingress.ts";
import type { BridgeMetrics } from "./metrics.ts";
import { readTlsFile } from "./tls-files.ts";

export interface Readiness {
  ready: boolean;
  /** Why not, e.g. "nats disconnected", "route ship not bound", "shutting down". */
  reasons: string[];
  /**
   * Paused routes: their circuit breaker found the function down, or an operator paused them. Neither
   * makes the bridge unready (the ingress must keep taking events).
   */
  paused?: string[];
  /** The reason of each route an operator paused (`jetway pause`). */
  paused_by?: Record<string, string>;
}

export interface HttpAppDeps {
  ingress: IngressDeps;
  metrics: BridgeMetrics;
  readiness: () => Readiness;
  logger: pino.Logger;
}

const errorBody = (code: string, message: string) => ({ error: { code, message } });

/** The bridge's HTTP surface: ingress, health, readiness and metrics. */
export function createHttpApp(deps: HttpAppDeps): Hono {
  const app = new Hono();

  // One ingress_publish_total count per HTTP request, by the status it answered.
  const ingress = (handle: (c: Context, deps: IngressDeps) => Promise<Response>) => async (c: Context) => {
    try {
      const response = await handle(c, deps.ingress);
      deps.metrics.ingress(response.status);
      return response;
    } catch (error) {
      const status = error instanceof IngressError ? error.status : 500;
      deps.metrics.ingress(status);
      throw error;
    }
  };
  // The exact path first: "/v1/publish/*" would match it too.
  app.post("/v1/publish", ingress(handlePublishBatch));
  app.post("/v1/publish/*", ingress(handlePublish));
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", (c) => {
    const r = deps.readiness();
    const body = { ready: r.ready, reasons: r.reasons, paused: r.paused ?? [] };
    return c.json(
      r.paused_by && Object.keys(r.paused_by).length > 0 ? { ...body, paused_by: r.paused_by } : body,
      r.ready ? 200 : 503,
    );
  });
  app.get("/metrics", async (c) => {
    const text = await deps.metrics.metrics();
    return c.body(text, 200, { "content-type": deps.metrics.contentType });
  });

  app.notFound((c) => c.json(errorBody("not_found", "no such endpoint"), 404));
  app.onError((error, c) => {
    if (error instanceof IngressError) {
      // The rest of an oversized body is left unread: the connection cannot carry another request.
      if (error.status === 413) c.header("connection", "close");
      return c.json(errorBody(error.code, error.message), error.status);
    }
    deps.logger.error({ err: error, path: c.req.path }, "http handler failed");
    return c.json(errorBody("internal", "internal error"), 500);
  });
  return app;
}

export interface RunningHttpServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on host:port (port 0 picks a free one) and resolves once accepting connections; with `tls`
 * (`http.tls`: certificate and key files), HTTPS.
 */
export function startHttpServer(
  app: Hono,
  port: number,
  host: string,
  tls?: { cert_file: string; key_file: string },
): Promise<RunningHttpServer> {
  const secure = tls && {
    createServer: createHttpsServer,
    serverOptions: {
      cert: readTlsFile(tls.cert_file, "http.tls.cert_file"),
      key: readTlsFile(tls.key_file, "http.tls.key_file"),
    },
  };
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port, hostname: host, ...secure }, (info: AddressInfo) => {
      resolve({
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Keep-alive sockets would hold close() open until they time out.
            if ("closeIdleConnections" in server) server.closeIdleConnections();
          }),
      });
    });
    server.once("error", reject);
  });
}
