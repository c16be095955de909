import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { inArray, sql } from "drizzle-orm";
import pino from "pino";
import { parseConfig } from "../../bridge/config.ts";
import { type RunningBridge, startBridge } from "../../bridge/main.ts";
import { freePort, NatsServer } from "../../bridge/nats-server.ts";
import type { DbHandle } from "../../functions/db/index.ts";
import { orders } from "../../functions/db/schema.ts";
import { createTestDb } from "../../functions/db/testing.ts";
import { seedStock } from "../../functions/inventory/stock.ts";
import { devBridgeConfig, readRawConfig } from "./bridge-config.ts";
import { type FunctionHost, startFunctionHost } from "./host.ts";
import { type DevPorts, FUNCTION_NAMES, type FunctionName, localUrl } from "./ports.ts";
import { DEFAULT_DEV_CONFIG } from "./runner.ts";
import { functionVars } from "./vars.ts";

/*
 * The whole reference system for tests: a nats-server of its own, a Postgres schema of its own, every
 * function in this process (the dev host) and the bridge in-process, configured from infra/bridge.dev.yaml
 * re-pointed at free ports with short back-offs.
 */

export const SYSTEM_SECRET = "system-test-secret";
/** The ingress's signing key: the order function signs every publish with it, as deployed systems do. */
export const SYSTEM_PUBLISH_SECRET = "system-test-publish-secret";

export interface System {
  ports: DevPorts;
  nats: NatsServer;
  db: DbHandle;
  host: FunctionHost;
  bridge: RunningBridge;
  auditDir: string;
  close(): Promise<void>;
}

export interface SystemOptions {
  stock: Record<string, number>;
  /** Extra routes and per-route overrides, merged into the dev config. */
  routes?: Record<string, Record<string, unknown>>;
  /** Routes beside the dev config's, given the ports (e.g. one more route to a function). */
  extraRoutes?: (ports: DevPorts) => Record<string, unknown>[];
}

const FAST_RETRY = { backoff: ["100ms", "200ms", "500ms"], max_backoff: "1s", max_deliver: 20 };

/** NATS, a database, the ports and the bridge config of a system whose functions are not running yet. */
export interface PreparedSystem {
  ports: DevPorts;
  nats: NatsServer;
  db: DbHandle;
  /** The bindings every function sees (JETWAY_SECRET, GATEWAY_URL, JETWAY_PUBLISH_URL, AUDIT_DIR…). */
  vars: Record<string, string>;
  auditDir: string;
  /** The bridge's config as a file would hold it (secret from JETWAY_SECRET: see `bridgeEnv`). */
  bridgeRaw: Record<string, unknown>;
  bridgeEnv: Record<string, string>;
  /** A temp directory of this system's, removed by close(). */
  dataDir: string;
  close(): Promise<void>;
}

/** Everything but the bridge: what a bridge (in this process or another) is pointed at. */
export interface SystemParts extends PreparedSystem {
  host: FunctionHost;
}

/**
 * NATS, a database (stock seeded) and the dev bridge config re-pointed at free ports; the functions are the
 * caller's to start, in this process (startSystemParts) or as processes of their own (the pipeline bench).
 */
export async function prepareSystem(options: SystemOptions): Promise<PreparedSystem> {
  const nats = await NatsServer.start();
  const db = await createTestDb();
  await seedStock(db.db, options.stock);
  const functions = {} as Record<FunctionName, number>;
  for (const name of FUNCTION_NAMES) functions[name] = await freePort();
  const ports: DevPorts = { bridge: await freePort(), nats: nats.port, functions };
  const dataDir = await mkdtemp(join(tmpdir(), "jetway-system-"));
  const vars: Record<string, string> = {
    ...functionVars(ports, dataDir, {
      JETWAY_SECRET: SYSTEM_SECRET,
      JETWAY_PUBLISH_SECRET: SYSTEM_PUBLISH_SECRET,
    }),
    JETWAY_LOG_LEVEL: "error",
  };
  const raw = devBridgeConfig(await readRawConfig(DEFAULT_DEV_CONFIG), ports);
  const routes = (raw.routes as Record<string, unknown>[]).map((route) => ({
    ...route,
    ...FAST_RETRY,
    ...options.routes?.[String(route.name)],
  }));
  return {
    ports,
    nats,
    db,
    vars,
    auditDir: vars.AUDIT_DIR ?? join(dataDir, "audit"),
    bridgeRaw: {
      ...raw,
      nats: { servers: [nats.url] },
      http: { port: ports.bridge, host: "127.0.0.1", publish_secret: SYSTEM_PUBLISH_SECRET },
      routes: [...routes, ...(options.extraRoutes?.(ports) ?? [])],
      shutdown: { grace_period: "2s" },
    },
    bridgeEnv: { JETWAY_SECRET: SYSTEM_SECRET },
    dataDir,
    async close() {
      await db.close();
      await nats.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** NATS, a database and every function in this process, plus the bridge config for them; no bridge. */
export async function startSystemParts(options: SystemOptions): Promise<SystemParts> {
  const prepared = await prepareSystem(options);
  // Functions read their settings through hono's env(c), which is process.env on Node.
  Object.assign(process.env, prepared.vars);
  const quiet = pino({ level: "error" });
  const host = await startFunctionHost({
    ports: prepared.ports,
    db: prepared.db,
    vars: prepared.vars,
    logger: quiet,
  }).catch(async (error: unknown) => {
    await prepared.close();
    throw error;
  });
  return {
    ...prepared,
    host,
    async close() {
      await host.close();
      await prepared.close();
    },
  };
}

export async function startSystem(options: SystemOptions): Promise<System> {
  const parts = await startSystemParts(options);
  const config = parseConfig(parts.bridgeRaw, "system test config", parts.bridgeEnv);
  const bridge = await startBridge(config, { logger: pino({ level: "error" }) });
  return {
    ...parts,
    bridge,
    async close() {
      await bridge.shutdown();
      await parts.close();
    },
  };
}

export interface PlacedOrder {
  order_id: string;
  status: string;
}

/** POST /orders as a client would, retrying the same Idempotency-Key while the answer says to. */
export async function placeOrder(system: System, key: string, body: unknown): Promise<PlacedOrder> {
  const url = localUrl(system.ports.functions.order, "/orders");
  for (;;) {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": key },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as PlacedOrder;
    if (res.status === 202) return json;
    if (res.status !== 503) throw new Error(`POST /orders answered ${res.status}: ${JSON.stringify(json)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Polls until every given order is confirmed or cancelled (the test's own timeout bounds the wait). */
export async function waitFinal(system: System, ids: string[]): Promise<void> {
  for (;;) {
    const [row] = await system.db.db
      .select({ n: sql<number>`count(*)::int` })
      .from(orders)
      .where(sql`${inArray(orders.id, ids)} and ${orders.status} in ('confirmed', 'cancelled')`);
    if ((row?.n ?? 0) === ids.length) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Polls until no route has messages pending or awaiting an ack: everything emitted has been handled. */
export async function waitQuiet(system: System): Promise<void> {
  const jsm = await jetstreamManager(system.bridge.nc);
  for (;;) {
    let busy = 0;
    for (const route of system.bridge.config.routes) {
      const info = await jsm.consumers.info(route.stream, route.durable ?? route.name);
      busy += info.num_pending + info.num_ack_pending;
    }
    if (busy === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}
