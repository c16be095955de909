import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { Pool } from "undici";
import { isListening } from "../../bridge/nats-server.ts";
import { BRIDGE_NODE_FLAGS } from "../../bridge/node-flags.ts";
import { waitFor } from "../../bridge/testing/http-function.ts";
import { DirStore } from "../../functions/audit/dir-store.ts";
import { Child, memoryBytes, postgresCpuSeconds } from "../children.ts";
import { type FunctionProcess, nowNs } from "../protocol.ts";
import { summarize } from "../stats.ts";
import { cpuOf, type RunContext, round, type ScenarioResult } from "./common.ts";

const FINAL_SUBJECTS = ["orders.confirmed.v1", "orders.cancelled.v1"];
/** The payment gateway's simulator: a stand-in for a third party, so its CPU is not the functions'. */
const GATEWAY = "gateway-sim";
/** Orders placed one by one at half the measured capacity, for completion latency. */
const PACED = 50;

const orderBody = (i: number) =>
  JSON.stringify({
    customer_id: `cust-${i % 1000}`,
    items: [{ sku: "sku-bench", quantity: 1, unit_price_minor: 1_250 }],
    currency: "EUR",
    payment_token: "tok_bench",
  });

/**
 * POSTs `count` orders from `clients` concurrent clients; records POST start times by order id. Through
 * undici's Pool, not the global fetch: the driver shares the two cores with the system it measures, and
 * fetch costs it ~4× the CPU per request.
 */
async function placeOrders(
  pool: Pool,
  from: number,
  count: number,
  started: Map<string, number>,
  clients: number,
): Promise<void> {
  let next = from;
  const end = from + count;
  const client = async () => {
    while (next < end) {
      const i = next++;
      const t = nowNs();
      const res = await pool.request({
        method: "POST",
        path: "/orders",
        headers: { "content-type": "application/json", "idempotency-key": `bench-${i}` },
        body: orderBody(i),
      });
      const body = (await res.body.json()) as { order_id?: string };
      if (res.statusCode !== 202 || !body.order_id)
        throw new Error(`POST /orders answered ${res.statusCode}`);
      started.set(body.order_id, t);
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
}

/** The streams the audit routes record, every message of each (infra/bridge.dev.yaml). */
const AUDITED_STREAMS = ["ORDERS", "PAYMENTS", "INVENTORY"];

/**
 * Waits for the audit log to hold an entry for every message of the audited streams, or `timeoutMs`;
 * returns how many it holds and how many it should. Orders do not wait on audit, so a stalled audit route
 * shows here, not in the rate.
 */
async function auditCaughtUp(dir: string, nc: NatsConnection, timeoutMs: number) {
  const jsm = await jetstreamManager(nc);
  let expected = 0;
  for (const name of AUDITED_STREAMS) expected += (await jsm.streams.info(name)).state.messages;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const held = (await new DirStore(dir).list()).length;
    if (held >= expected || performance.now() > deadline) return { held, expected };
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Resolves once every order in `started` has a final event, or rejects after `timeoutMs`. */
async function allFinal(started: Map<string, number>, finals: Map<string, number>, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    let missing = 0;
    for (const id of started.keys()) if (!finals.has(id)) missing++;
    if (missing === 0) return;
    if (performance.now() > deadline) throw new Error(`${missing} orders not final after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Pids = { functions: Map<string, number>; bridge: number; nats: number | undefined };

/** CPU seconds so far of each process of the system, each function's on its own, and PostgreSQL's. */
const cpuOfSystem = (pids: Pids): Record<string, number> => ({
  ...cpuOf({ bridge: pids.bridge, nats: pids.nats, ...Object.fromEntries(pids.functions) }),
  postgres: postgresCpuSeconds(),
});

/** RSS in MB of the bridge and each function process (nats-server and PostgreSQL size their own caches). */
const rssOfSystem = (pids: Pids): Record<string, number> =>
  Object.fromEntries(
    [["bridge", pids.bridge] as const, ...pids.functions].map(([name, pid]) => [
      name,
      round(memoryBytes(pid, "VmRSS") / 2 ** 20, 1),
    ]),
  );

type BatchTotals = Map<string, { sum: number; count: number }>;

/** Per batch route, the bridge's `jetway_batch_size` histogram totals (messages and batches so far). */
function batchTotals(metrics: string): BatchTotals {
  const totals: BatchTotals = new Map();
  for (const m of metrics.matchAll(/^jetway_batch_size_(sum|count)\{route="([^"]+)"\} (\S+)$/gm)) {
    const [, kind, route = "", value] = m;
    const t = totals.get(route) ?? { sum: 0, count: 0 };
    t[kind as "sum" | "count"] = Number(value);
    totals.set(route, t);
  }
  return totals;
}

/** Ingress requests the bridge answered 202 so far (every event stored). */
export const ingressRequests = (metrics: string): number =>
  Number(/^jetway_ingress_publish_total\{status="202"\} (\S+)$/m.exec(metrics)?.[1] ?? 0);

/** Messages per batch in the window, per route (`batch_<route>`): how far the load amortises each hop. */
function meanBatchSizes(before: BatchTotals, after: BatchTotals): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const [route, t] of after) {
    const b = before.get(route) ?? { sum: 0, count: 0 };
    const batches = t.count - b.count;
    if (batches > 0) sizes[`batch_${route}`] = round((t.sum - b.sum) / batches, 1);
  }
  return sizes;
}

/**
 * Starts each function from its Node entry, one at a time (each migrates the shared schema at start-up,
 * and concurrent migrations of one schema can collide), each ready once its port accepts connections.
 */
async function startFunctions(
  specs: readonly FunctionProcess[],
  execArgv: string[],
  into: Map<string, Child>,
): Promise<void> {
  for (const spec of specs) {
    const child = Child.start(`pipeline-${spec.name}`, spec.script, [], spec.env, execArgv);
    into.set(spec.name, child);
    await waitFor(`${spec.name} to listen on ${spec.port}`, () => isListening(spec.port), 30_000);
  }
}

/** A real gateway takes a while to authorise a card: how many charges are in flight then sets the pace. */
async function setGatewayLatency(gatewayUrl: string, latencyMs: number): Promise<void> {
  const res = await fetch(`${gatewayUrl}/control`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ latency_ms: latencyMs }),
  });
  if (!res.ok) throw new Error(`gateway simulator refused latency_ms ${latencyMs}: ${res.status}`);
}

/**
 * The order system end to end, deployed as in production: each function a process of its own from its Node
 * entry, the gateway simulator another, the bridge (`jetway bridge`, infra/bridge.dev.yaml re-pointed) and
 * nats-server others, PostgreSQL the machine's.
 * Clients POST /orders, the order function publishes through the bridge's ingress, payment and inventory
 * run off JetStream, the order function folds their outcomes and announces orders.confirmed/cancelled.
 * Completion latency runs from the POST to that final event (seen on a plain NATS subscription). CPU is
 * reported per order for each process (each function's, and PostgreSQL's); the gateway simulator's charge count must
 * equal the orders placed (every order charged exactly once).
 */
export async function pipelineScenario(ctx: RunContext): Promise<ScenarioResult> {
  const count = ctx.pipelineOrders;
  const warmup = ctx.pipelineWarmup;
  const system = Child.start("pipeline", "pipeline-entry.ts", [], {}, ctx.execArgv);
  let bridge: Child | undefined;
  const functions = new Map<string, Child>();
  try {
    const ready = await system.waitFor("ready", 60_000);
    if (
      !ready.natsUrl ||
      !ready.port ||
      !ready.bridge ||
      !ready.gatewayUrl ||
      !ready.functions ||
      !ready.auditDir
    )
      throw new Error("pipeline child gave no ports");
    await startFunctions(ready.functions, ctx.execArgv, functions);
    if (ctx.gatewayLatencyMs > 0) await setGatewayLatency(ready.gatewayUrl, ctx.gatewayLatencyMs);
    bridge = Child.start(
      "pipeline-bridge",
      "../bin/jetway.ts",
      ["bridge", "--config", ready.bridge.configFile],
      ready.bridge.env,
      [...ctx.execArgv, ...BRIDGE_NODE_FLAGS],
    );
    const readyz = `http://127.0.0.1:${ready.bridge.port}/readyz`;
    await waitFor(
      "the pipeline's bridge to be ready",
      () =>
        fetch(readyz).then(
          (r) => r.ok,
          () => false,
        ),
      30_000,
    );
    const pids: Pids = {
      functions: new Map([...functions].map(([name, child]) => [name, child.pid])),
      bridge: bridge.pid,
      nats: ready.natsPid,
    };
    const nc = await connect({ servers: ready.natsUrl, noAsyncTraces: true });
    const finals = new Map<string, number>();
    let statusCancelled = 0;
    for (const subject of FINAL_SUBJECTS) {
      nc.subscribe(subject, {
        callback: (_err, msg) => {
          const id = (msg.json() as { order_id: string }).order_id;
          if (!finals.has(id)) finals.set(id, nowNs());
          if (subject === "orders.cancelled.v1") statusCancelled++;
        },
      });
    }
    await nc.flush();
    const pool = new Pool(`http://127.0.0.1:${ready.port}`, { connections: ctx.pipelineClients });
    try {
      const warm = new Map<string, number>();
      await placeOrders(pool, 0, warmup, warm, ctx.pipelineClients);
      await allFinal(warm, finals, 60_000);
      statusCancelled = 0;
      const started = new Map<string, number>();

      const metricsUrl = `http://127.0.0.1:${ready.bridge.port}/metrics`;
      const metrics0 = await (await fetch(metricsUrl)).text();
      const rss0 = rssOfSystem(pids);
      const cpu0 = cpuOfSystem(pids);
      const driver0 = process.cpuUsage();
      const t0 = nowNs();
      await placeOrders(pool, warmup, count, started, ctx.pipelineClients);
      await allFinal(started, finals, 120_000);
      const cpu1 = cpuOfSystem(pids);
      const rss1 = rssOfSystem(pids);
      const driver = process.cpuUsage(driver0);
      const metrics1 = await (await fetch(metricsUrl)).text();
      const latencies = [...started].map(([id, t]) => (finals.get(id) ?? t) - t);
      const last = Math.max(...[...started.keys()].map((id) => finals.get(id) ?? 0));
      const ordersPerS = count / ((last - t0) / 1e9);
      // The flood above measures capacity; its latencies are queueing. Completion latency proper comes
      // from orders placed one at a time at half that capacity.
      const pacedRate = Math.max(1, ordersPerS / 2);
      const paced = new Map<string, number>();
      for (let i = 0; i < PACED; i++) {
        const tick = new Promise((r) => setTimeout(r, 1000 / pacedRate));
        await placeOrders(pool, warmup + count + i, 1, paced, 1);
        await tick;
      }
      await allFinal(paced, finals, 60_000);
      const pacedLatencies = [...paced].map(([id, t]) => (finals.get(id) ?? t) - t);
      const placed = warm.size + started.size + paced.size;
      const charges = ((await (await fetch(`${ready.gatewayUrl}/stats`)).json()) as { charges: number })
        .charges;
      const audit = await auditCaughtUp(ready.auditDir, nc, 30_000);
      const problems = [
        ...(charges === placed ? [] : [`${placed} orders placed, ${charges} charges made`]),
        ...(audit.held === audit.expected
          ? []
          : [`audit log holds ${audit.held} of ${audit.expected} events`]),
      ];
      const perOrder = (key: string) => round((((cpu1[key] ?? 0) - (cpu0[key] ?? 0)) * 1e6) / count, 1);
      const domain = [...pids.functions.keys()].filter((name) => name !== GATEWAY);
      const perFunction = domain.map((name) => [name, perOrder(name)] as const);

      return {
        name: "pipeline",
        // A duplicate or missing charge, or an event missing from the audit log, fails the scenario
        // whatever its speed.
        status: problems.length === 0 ? "ok" : "failed",
        ...(problems.length === 0 ? {} : { note: problems.join("; ") }),
        messages: count,
        msgs_per_s: Math.round(ordersPerS),
        extra: {
          orders: count,
          cancelled: statusCancelled,
          charges_per_order: round(charges / placed, 3),
          audited_events: audit.held,
          flood_completion_p50_ms: summarize(latencies).p50_ms,
          flood_completion_p99_ms: summarize(latencies).p99_ms,
          paced_orders_per_s: round(pacedRate, 1),
          completion_p50_ms: summarize(pacedLatencies).p50_ms,
          completion_p99_ms: summarize(pacedLatencies).p99_ms,
          functions_cpu_us_per_order: round(
            perFunction.reduce((sum, [, us]) => sum + us, 0),
            1,
          ),
          ...Object.fromEntries(perFunction.map(([name, us]) => [`cpu_us_per_order_${name}`, us])),
          gateway_sim_cpu_us_per_order: perOrder(GATEWAY),
          // The bench's own process (the clients, the subscription to final events) shares the cores too.
          driver_cpu_us_per_order: round((driver.user + driver.system) / count, 1),
          bridge_cpu_us_per_order: perOrder("bridge"),
          nats_cpu_us_per_order: perOrder("nats"),
          postgres_cpu_us_per_order: perOrder("postgres"),
          clients: ctx.pipelineClients,
          gateway_latency_ms: ctx.gatewayLatencyMs,
          // Each process's RSS when the window opened and when it closed: growth that follows the order
          // count, not the load, is memory held per message.
          ...Object.fromEntries(
            Object.keys(rss1).map((name) => [`rss_mb_${name}`, `${rss0[name]} -> ${rss1[name]}`]),
          ),
          // How many POSTs shared an INSERT and an ingress request (the order function coalesces them).
          orders_per_ingress_request: round(
            count / Math.max(1, ingressRequests(metrics1) - ingressRequests(metrics0)),
            1,
          ),
          ...meanBatchSizes(batchTotals(metrics0), batchTotals(metrics1)),
        },
      };
    } finally {
      await pool.close();
      await nc.close();
    }
  } finally {
    await bridge?.terminate(10_000);
    await Promise.all([...functions.values()].map((f) => f.terminate(10_000)));
    await system.stop(10_000);
  }
}
