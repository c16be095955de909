import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import pino from "pino";
import type { DbHandle } from "../../functions/db/index.ts";
import { createGatewayApp } from "../../functions/gateway-sim/app.ts";
import { GatewayState } from "../../functions/gateway-sim/state.ts";
import { DOMAIN_APPS, type FetchApp } from "./apps.ts";
import { type DevPorts, type FunctionName, localUrl } from "./ports.ts";

export interface FunctionHostOptions {
  ports: DevPorts;
  db: DbHandle;
  /** Bindings every request sees (JETWAY_SECRET, GATEWAY_URL, JETWAY_PUBLISH_URL…), over process.env. */
  vars: Record<string, string>;
  gateway?: GatewayState;
  /** For the host's own lines (and the gateway-sim request log). Default: JSON lines on stdout. */
  logger?: pino.Logger;
  hostname?: string;
}

export interface FunctionHost {
  urls: Partial<Record<FunctionName, string>>;
  gateway: GatewayState;
  /** Stops accepting and waits for in-flight requests. */
  close(): Promise<void>;
}

function listen(app: FetchApp, vars: Record<string, string>, port: number, hostname: string) {
  return new Promise<ServerType>((resolve, reject) => {
    const server = serve({ fetch: (request) => app.fetch(request, vars), port, hostname }, () =>
      resolve(server),
    );
    server.once("error", reject);
  });
}

/** The simulator does not log by itself; one line per charge request makes its behaviour visible. */
function withRequestLog(app: FetchApp, log: pino.Logger): FetchApp {
  return {
    async fetch(request, env) {
      const res = await app.fetch(request, env);
      const { pathname } = new URL(request.url);
      if (pathname !== "/healthz")
        log.info({ method: request.method, path: pathname, status: res.status }, "request");
      return res;
    },
  };
}

/**
 * Serves the gateway simulator and every domain function in this process, each on its own port, all
 * sharing one database handle.
 */
export async function startFunctionHost(options: FunctionHostOptions): Promise<FunctionHost> {
  const hostname = options.hostname ?? "127.0.0.1";
  const logger = options.logger ?? pino({ base: { fn: "dev" }, timestamp: pino.stdTimeFunctions.isoTime });
  const gateway = options.gateway ?? new GatewayState();
  const apps: [FunctionName, FetchApp][] = [
    ["gateway-sim", withRequestLog(createGatewayApp(gateway), logger.child({ fn: "gateway-sim" }))],
  ];
  for (const [name, create] of Object.entries(DOMAIN_APPS)) {
    apps.push([name as FunctionName, create({ db: options.db, vars: options.vars })]);
  }
  const servers: ServerType[] = [];
  const urls: FunctionHost["urls"] = {};
  try {
    for (const [name, app] of apps) {
      const server = await listen(app, options.vars, options.ports.functions[name], hostname);
      servers.push(server);
      urls[name] = localUrl((server.address() as AddressInfo).port);
      logger.info({ function: name, url: urls[name] }, "function listening");
    }
  } catch (error) {
    await Promise.all(servers.map((s) => closeServer(s)));
    throw error;
  }
  return { urls, gateway, close: () => Promise.all(servers.map((s) => closeServer(s))).then(() => {}) };
}

function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive sockets from the bridge would hold close() open until they time out.
    if ("closeIdleConnections" in server) server.closeIdleConnections();
  });
}
