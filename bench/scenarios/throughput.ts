import { BRIDGE_NODE_FLAGS } from "../../bridge/node-flags.ts";
import { Child } from "../children.ts";
import { BENCH_EMIT_SUBJECT, BENCH_OUT_SUBJECT, BENCH_SUBJECT } from "../config.ts";
import { type PublishTimes, publishBurst } from "../publish.ts";
import { joinBySeq } from "../stats.ts";
import {
  functionSamples,
  latency,
  measureWindow,
  prepareRoute,
  type RunContext,
  type ScenarioResult,
  streamName,
  withNats,
} from "./common.ts";

/** Messages taken before the measured window opens: JIT, pools and connections warm up first. */
export const warmupFor = (n: number): number => Math.max(5_000, Math.round(n / 5));

export type BacklogKind = "ceiling-js" | "bridge" | "bridge-batch" | "bridge-events";

const SCRIPT: Record<BacklogKind, string> = {
  "ceiling-js": "ceiling-js.ts",
  bridge: "bridge-entry.ts",
  "bridge-batch": "bridge-entry.ts",
  "bridge-events": "bridge-entry.ts",
};

export const BATCH = { size: 100, max_wait: 5 };

/**
 * How many times `n` a scenario measures. The consumers that run 4–8× faster than single delivery take
 * 4× the messages, so every window lasts seconds, not one: a 1 s window read 0.85–0.9× the rate of a 4 s
 * one for the same code (one GC or a stalled virtual CPU weighs on a short window far more).
 */
export const WINDOW_SCALE: Record<BacklogKind, number> = {
  "ceiling-js": 4,
  bridge: 1,
  "bridge-batch": 4,
  "bridge-events": 2,
};

/**
 * Drains a backlog: warm-up + n messages are stored first, then the consumer child starts and takes
 * them as fast as it can. The rate is the consumer's, not the publisher's, and nothing else competes for
 * the two cores while it is measured. Latencies here include the wait in the backlog (see README).
 */
export async function backlogScenario(ctx: RunContext, kind: BacklogKind): Promise<ScenarioResult> {
  return withNats(async (env) => {
    const stream = streamName(kind);
    const events = kind === "bridge-events";
    const { file } = await prepareRoute(ctx, env, {
      stream,
      ...(kind === "bridge-batch" || events ? { batch: BATCH } : {}),
      ...(events ? { events } : {}),
    });
    const n = ctx.n * WINDOW_SCALE[kind];
    const warmup = warmupFor(n);
    const published: PublishTimes = new Map();
    await publishBurst(env.js, warmup + n, published, undefined, events ? BENCH_EMIT_SUBJECT : BENCH_SUBJECT);
    await functionSamples(ctx);
    const child = Child.start(
      kind,
      SCRIPT[kind],
      [file],
      {
        BENCH_WARMUP: String(warmup),
        BENCH_EXPECT: String(n),
        ...(ctx.allocProfDir && kind !== "ceiling-js" ? { BENCH_ALLOC_PROF: ctx.allocProfDir } : {}),
      },
      // The bridge as its image runs it; the ceiling as plain node.
      kind === "ceiling-js" ? ctx.execArgv : [...ctx.execArgv, ...BRIDGE_NODE_FLAGS],
    );
    try {
      const window = await measureWindow(child, {
        bridge: child.pid,
        nats: env.server.pid,
        function: ctx.fn.pid,
      });
      child.send({ type: "acks" });
      const acks = await child.waitFor("acks");
      const samples = await functionSamples(ctx);
      const result: ScenarioResult = {
        name: kind,
        status: "ok",
        ...window,
        publish_to_function: latency(samples.latencies_ns),
        publish_to_ack: latency(joinBySeq(published, acks.seqs, acks.ns)),
        extra: { function_requests: samples.received, function_batches: samples.batches },
      };
      if (events) {
        // Every settled message's event must be in the stream: its ack waited for the PubAck.
        const stored = (await env.jsm.streams.info(stream, { subjects_filter: BENCH_OUT_SUBJECT })).state
          .subjects?.[BENCH_OUT_SUBJECT];
        if (result.extra) result.extra.events_stored = stored ?? 0;
        if ((stored ?? 0) < warmup + n) {
          result.status = "failed";
          result.note = `${stored ?? 0} events stored for ${warmup + n} messages settled`;
        }
      }
      if (kind === "bridge-batch" && samples.batches === 0) {
        result.status = "pending";
        result.note =
          "route.batch set but the function got no batch deliveries: batch delivery not in the bridge yet";
      }
      if (kind === "ceiling-js") {
        delete result.cpu_us_per_msg?.function;
        delete result.publish_to_function;
      }
      return result;
    } finally {
      await child.stop();
    }
  });
}

/** The bridge's HTTP client alone driving the null function at the route's concurrency; no NATS. */
export async function ceilingHttp(ctx: RunContext): Promise<ScenarioResult> {
  return withNats(async (env) => {
    const { file } = await prepareRoute(ctx, env, { stream: streamName("http") });
    await functionSamples(ctx);
    const warmup = warmupFor(ctx.n);
    const child = Child.start(
      "ceiling-http",
      "ceiling-http.ts",
      [file],
      { BENCH_WARMUP: String(warmup), BENCH_EXPECT: String(ctx.n) },
      ctx.execArgv,
    );
    try {
      const window = await measureWindow(child, { bridge: child.pid, function: ctx.fn.pid });
      const samples = await functionSamples(ctx);
      return {
        name: "ceiling-http",
        status: "ok",
        ...window,
        publish_to_function: latency(samples.latencies_ns),
        extra: { function_requests: samples.received },
      };
    } finally {
      await child.stop();
    }
  });
}
