import { durableName } from "../../bridge/config.ts";
import { BRIDGE_NODE_FLAGS } from "../../bridge/node-flags.ts";
import { Child, memoryBytes } from "../children.ts";
import { publishBurst } from "../publish.ts";
import {
  functionSamples,
  prepareRoute,
  type RunContext,
  round,
  type ScenarioResult,
  streamName,
  withNats,
} from "./common.ts";

const MB = 2 ** 20;
const mb = (bytes: number) => round(bytes / MB, 1);

async function usage(child: Child): Promise<NodeJS.MemoryUsage> {
  child.send({ type: "memory" });
  return (await child.waitFor("memory", 10_000)).usage;
}
const WARMUP = 20_000;
/** How long the bridge keeps draining after the backlog is stored before the peak is read. */
const DRAIN_MS = 10_000;

/**
 * A bridge that has done some work and gone idle gives its baseline RSS; then `ctx.backlog` messages
 * arrive far faster than it can deliver them. The consumer's max_ack_pending must keep that backlog on
 * the server: the bridge's peak RSS (VmHWM) may only rise ~20 MB above the idle figure.
 */
export async function memoryScenario(ctx: RunContext): Promise<ScenarioResult> {
  return withNats(async (env) => {
    const stream = streamName("memory");
    const { config, file } = await prepareRoute(ctx, env, { stream });
    const route = config.routes[0];
    if (!route) throw new Error("no route");
    const child = Child.start(
      "bridge",
      "bridge-entry.ts",
      [file],
      { BENCH_WARMUP: String(WARMUP), BENCH_EXPECT: String(ctx.backlog), BENCH_KEEP_TIMES: "0" },
      [...ctx.execArgv, ...BRIDGE_NODE_FLAGS],
    );
    try {
      await child.waitFor("ready");
      await publishBurst(env.js, WARMUP);
      await child.waitFor("first");
      await new Promise((r) => setTimeout(r, 2_000));
      const idle = memoryBytes(child.pid, "VmRSS");
      const idleUsage = await usage(child);
      let sampledPeak = idle;
      const peakUsage = { ...idleUsage };
      const sampler = setInterval(() => {
        sampledPeak = Math.max(sampledPeak, memoryBytes(child.pid, "VmRSS"));
      }, 100);
      // Heap vs message bytes: buffered messages would show in arrayBuffers, GC slack in heapTotal.
      const heapSampler = setInterval(() => {
        void usage(child).then(
          (u) => {
            for (const k of Object.keys(u) as (keyof NodeJS.MemoryUsage)[])
              peakUsage[k] = Math.max(peakUsage[k], u[k]);
          },
          () => undefined,
        );
      }, 1_000);
      const started = performance.now();
      await publishBurst(env.js, ctx.backlog);
      const publishS = (performance.now() - started) / 1000;
      const info = await env.jsm.consumers.info(stream, durableName(route));
      const backlogAtPeak = info.num_pending;
      await Promise.race([child.waitFor("done"), new Promise((r) => setTimeout(r, DRAIN_MS))]);
      clearInterval(sampler);
      clearInterval(heapSampler);
      const hwm = memoryBytes(child.pid, "VmHWM");
      const after = await env.jsm.consumers.info(stream, durableName(route));
      await functionSamples(ctx);
      return {
        name: "memory",
        status: "ok",
        bridge_peak_rss_mb: round(hwm / MB, 1),
        extra: {
          backlog: ctx.backlog,
          publish_s: round(publishS, 1),
          idle_rss_mb: round(idle / MB, 1),
          sampled_peak_rss_mb: round(sampledPeak / MB, 1),
          rss_delta_mb: round((hwm - idle) / MB, 1),
          heap_total_mb: `${mb(idleUsage.heapTotal)} -> ${mb(peakUsage.heapTotal)}`,
          heap_used_mb: `${mb(idleUsage.heapUsed)} -> ${mb(peakUsage.heapUsed)}`,
          array_buffers_mb: `${mb(idleUsage.arrayBuffers)} -> ${mb(peakUsage.arrayBuffers)}`,
          pending_after_publish: backlogAtPeak,
          pending_at_end: after.num_pending,
          max_ack_pending: info.config.max_ack_pending ?? -1,
        },
      };
    } finally {
      await child.stop();
    }
  });
}
