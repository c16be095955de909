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
 * A warmed-up, idle bridge gets a paced `rate` msgs/s for `seconds`. Publish→function is the function's
 * receive time minus the publish stamp in the body; publish→ack joins the driver's publish times with the
 * bridge's ack times by stream sequence. All clocks are CLOCK_MONOTONIC, shared by the processes.
 */
export async function latencyScenario(
  ctx: RunContext,
  seconds: number,
  rate = LATENCY_RATE,
): Promise<ScenarioResult> {
  return withNats(async (env) => {
    const { file } = await prepareRoute(ctx, env, { stream: streamName("latency") });
    const measured = rate * seconds;
    const child = Child.start(
      "bridge",
      "bridge-entry.ts",
      [file],
      { BENCH_WARMUP: String(LATENCY_WARMUP), BENCH_EXPECT: String(measured) },
      [...ctx.execArgv, ...BRIDGE_NODE_FLAGS],
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
      const samples = await functionSamples(ctx);
      const perMsg = (k: keyof typeof pids) =>
        round((((after[k] ?? 0) - (before[k] ?? 0)) * 1e6) / done.count, 1);
      return {
        name: "latency",
        status: "ok",
        messages: done.count,
        msgs_per_s: Math.round(done.count / seconds),
        publish_to_function: latency(samples.latencies_ns),
        publish_to_ack: latency(joinBySeq(published, acks.seqs, acks.ns)),
        cpu_us_per_msg: { bridge: perMsg("bridge"), nats: perMsg("nats"), function: perMsg("function") },
        extra: { rate, seconds, warmup_burst: LATENCY_WARMUP },
      };
    } finally {
      await child.stop();
    }
  });
}
