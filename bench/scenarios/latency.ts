import { Child } from "../children.ts";
import { type PublishTimes, publishPaced } from "../publish.ts";
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

/**
 * A running, idle bridge gets a paced 1,000 msgs/s. The first second warms it up and is left out; the next
 * `seconds` are measured. Publish→function comes from the function's receive time minus the publish
 * stamp in the body; publish→ack joins the driver's publish times with the bridge's ack times by sequence.
 */
export async function latencyScenario(ctx: RunContext, seconds: number): Promise<ScenarioResult> {
  return withNats(async (env) => {
    const { file } = await prepareRoute(ctx, env, { stream: streamName("latency") });
    const warmup = LATENCY_RATE;
    const measured = LATENCY_RATE * seconds;
    const child = Child.start(
      "bridge",
      "bridge-entry.ts",
      [file],
      { BENCH_WARMUP: String(warmup), BENCH_EXPECT: String(measured) },
      ctx.execArgv,
    );
    try {
      await child.waitFor("ready");
      const published: PublishTimes = new Map();
      const pids = { bridge: child.pid, nats: env.server.pid, function: ctx.fn.pid };
      const pacing = publishPaced(env.js, LATENCY_RATE, 1 + seconds, published);
      await child.waitFor("first");
      const samplesWarm = await functionSamples(ctx);
      const before = cpuOf(pids);
      await pacing;
      const done = await child.waitFor("done");
      const after = cpuOf(pids);
      child.send({ type: "acks" });
      const acks = await child.waitFor("acks");
      const samples = await functionSamples(ctx);
      const warmSeqs = new Set(acks.seqs.slice(0, warmup));
      const measuredPublished = new Map([...published].filter(([seq]) => !warmSeqs.has(seq)));
      const perMsg = (k: keyof typeof pids) =>
        round((((after[k] ?? 0) - (before[k] ?? 0)) * 1e6) / done.count, 1);
      return {
        name: "latency",
        status: "ok",
        messages: done.count,
        msgs_per_s: Math.round(done.count / ((done.lastNs - done.firstNs) / 1e9)),
        publish_to_function: latency(samples.latencies_ns),
        publish_to_ack: latency(joinBySeq(measuredPublished, acks.seqs, acks.ns)),
        cpu_us_per_msg: { bridge: perMsg("bridge"), nats: perMsg("nats"), function: perMsg("function") },
        extra: { rate: LATENCY_RATE, seconds, warmup_samples_dropped: samplesWarm.received },
      };
    } finally {
      await child.stop();
    }
  });
}
