import { writeFile } from "node:fs/promises";
import { Pool } from "undici";
import { BRIDGE_NODE_FLAGS } from "../../bridge/node-flags.ts";
import { Child } from "../children.ts";
import { BENCH_SUBJECT } from "../config.ts";
import { nowNs } from "../protocol.ts";
import { summarize } from "../stats.ts";
import {
  cpuOf,
  prepareRoute,
  type RunContext,
  round,
  type ScenarioResult,
  streamName,
  withNats,
} from "./common.ts";
import { warmupFor } from "./throughput.ts";

/** Concurrent clients, as many as the pipeline's. */
const CLIENTS = 32;

/** The orders.created payload the order function publishes, near enough in size. */
const BODY = JSON.stringify({
  message_id: "01J00000000000000000000000",
  occurred_at: new Date(0).toISOString(),
  order_id: "ord_01J00000000000000000000000",
  customer_id: "cust-1",
  items: [{ sku: "sku-bench", quantity: 1, unit_price_minor: 1_250 }],
  total_minor: 1_250,
  currency: "EUR",
  payment_method: "card",
  payment_token: "tok_bench",
});

/**
 * HTTP → JetStream through the bridge's ingress, the way a function's outbox publishes: CLIENTS clients
 * POST /v1/publish/<subject> with an Idempotency-Key each, as fast as the answers come. No route consumes
 * the stream, so the bridge's CPU is the ingress's alone. Publishes/s, each POST's time to its 202, and
 * the bridge's and nats-server's CPU per publish.
 */
export async function ingressScenario(ctx: RunContext): Promise<ScenarioResult> {
  return withNats(async (env) => {
    const { config, file } = await prepareRoute(ctx, env, { stream: streamName("ingress") });
    await writeFile(file, JSON.stringify({ ...config, routes: [] }));
    const bridge = Child.start(
      "ingress",
      "bridge-entry.ts",
      [file],
      { BENCH_WARMUP: "1", BENCH_EXPECT: "1" },
      [...ctx.execArgv, ...BRIDGE_NODE_FLAGS],
    );
    const pool = new Pool(`http://127.0.0.1:${(await bridge.waitFor("ready")).port}`, {
      connections: CLIENTS,
    });
    let key = 0;
    const publish = async (count: number, times?: number[]) => {
      let left = count;
      const client = async () => {
        while (left-- > 0) {
          const t = nowNs();
          const res = await pool.request({
            method: "POST",
            path: `/v1/publish/${BENCH_SUBJECT}`,
            headers: { "content-type": "application/json", "idempotency-key": `ingress-${key++}` },
            body: BODY,
          });
          await res.body.text();
          if (res.statusCode !== 202) throw new Error(`ingress answered ${res.statusCode}`);
          times?.push(nowNs() - t);
        }
      };
      await Promise.all(Array.from({ length: CLIENTS }, client));
    };
    try {
      await publish(warmupFor(ctx.n));
      const pids = { bridge: bridge.pid, nats: env.server.pid };
      const times: number[] = [];
      const before = cpuOf(pids);
      const t0 = nowNs();
      await publish(ctx.n, times);
      const seconds = (nowNs() - t0) / 1e9;
      const after = cpuOf(pids);
      const perPublish = (k: keyof typeof pids) =>
        round((((after[k] ?? 0) - (before[k] ?? 0)) * 1e6) / ctx.n, 1);
      const http = summarize(times);
      return {
        name: "ingress",
        status: "ok",
        messages: ctx.n,
        msgs_per_s: Math.round(ctx.n / seconds),
        cpu_us_per_msg: { bridge: perPublish("bridge"), nats: perPublish("nats") },
        extra: { clients: CLIENTS, post_p50_ms: http.p50_ms, post_p99_ms: http.p99_ms },
      };
    } finally {
      await pool.close();
      await bridge.stop();
    }
  });
}
