import { BRIDGE_NODE_FLAGS } from "../../bridge/node-flags.ts";
import { Child } from "../children.ts";
import { type PublishTimes, publishBurst, publishPaced } from "../publish.ts";
import { joinBySeq } from "../stats.ts";
import {
  cpuOf,
  functionSamples,
  latency,
  prepareRoute,
  type RunContext,
  round,
  type ScenarioResult,
  streamName,
  withNats,
} from "./common.ts";

export const LATENCY_RATE = 1_000;

/** Messages the fresh bridge takes as a burst before pacing starts: a cold process is far slower (JIT). */
export const LATENCY_WARMUP = 10_000;

/**
 * What consumes the paced messages: the bridge (delivering to the null function), or the floor — the
 * ceiling-js child, which acks each message as it arrives: the same driver, nats-server and pacing with no
 * bridge, HTTP or function, so its tail is what this machine adds to any JetStream consumer.
 */
export type LatencyConsumer = "bridge" | "floor";

/**
 * A warmed-up, idle consumer gets a paced `rate` msgs/s for `seconds`. Publish→function is the function's
 * receive time minus the publish stamp in the body; publish→ack joins the driver's publish times with the
 * consumer's ack times by stream sequence. All clocks are CLOCK_MONOTONIC, shared by the processes.
 */
export async function latencyScenario(
  ctx: RunContext,
  seconds: number,
  rate = LATENCY_RATE,
  consumer: LatencyConsumer = "bridge",
): Promise<ScenarioResult> {
  const floor = consumer === "floor";
  return withNats(async (env) => {
    const { file } = await prepareRoute(ctx, env, { stream: streamName(floor ? "floor" : "latency") });
    const measured = rate * seconds;
    const child = Child.start(
      floor ? "consumer" : "bridge",
      floor ? "ceiling-js.ts" : "bridge-entry.ts",
      [file],
      { BENCH_WARMUP: String(LATENCY_WARMUP), BENCH_EXPECT: String(measured) },
      floor ? ctx.execArgv : [...ctx.execArgv, ...BRIDGE_NODE_FLAGS],
    );
    try {
      await child.waitFor("ready");
      await publishBurst(env.js, LATENCY_WARMUP);
      await child.waitFor("first");
      await new Promise((r) => setTimeout(r, 500));
      await functionSamples(ctx);
      const pids = { bridge: child.pid, nats: env.server.pid, function: ctx.fn.pid };
      const published: PublishTimes = new Map();
      const before = cpuOf(pids);
      await publishPaced(env.js, rate, seconds, published);
      const done = await child.waitFor("done");
      const after = cpuOf(pids);
      child.send({ type: "acks" });
      const acks = await child.waitFor("acks");
      const perMsg = (k: keyof typeof pids) =>
        round((((after[k] ?? 0) - (before[k] ?? 0)) * 1e6) / done.count, 1);
      const toAck = latency(joinBySeq(published, acks.seqs, acks.ns));
      if (floor) {
        return {
          name: "latency-floor",
          status: "ok",
          messages: done.count,
          msgs_per_s: Math.round(done.count / seconds),
          publish_to_ack: toAck,
          // The consumer child sits in the bridge's column: it is what the bridge is compared with.
          cpu_us_per_msg: { bridge: perMsg("bridge"), nats: perMsg("nats") },
          extra: { rate, seconds, warmup_burst: LATENCY_WARMUP },
        };
      }
      const samples = await functionSamples(ctx);
      return {
        name: "latency",
        status: "ok",
        messages: done.count,
        msgs_per_s: Math.round(done.count / seconds),
        publish_to_function: latency(samples.latencies_ns),
        publish_to_ack: toAck,
        cpu_us_per_msg: { bridge: perMsg("bridge"), nats: perMsg("nats"), function: perMsg("function") },
        extra: { rate, seconds, warmup_burst: LATENCY_WARMUP },
      };
    } finally {
      await child.stop();
    }
  });
}
