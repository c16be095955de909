import { describe, expect, it } from "vitest";
import { figuresOf, formatSummary, type Pair, pairOrder, summarise } from "./compare-stats.ts";

describe("pairOrder", () => {
  it("alternates which side runs first, starting with the base", () => {
    expect(pairOrder(4)).toEqual([
      ["base", "head"],
      ["head", "base"],
      ["base", "head"],
      ["head", "base"],
    ]);
  });
});

describe("figuresOf", () => {
  it("takes a throughput scenario's rate and each process's CPU per message", () => {
    expect(
      figuresOf({
        name: "bridge",
        status: "ok",
        msgs_per_s: 15_000,
        cpu_us_per_msg: { bridge: 51, nats: 17, function: 52 },
      }),
    ).toEqual({ "msgs/s": 15_000, "cpu bridge": 51, "cpu nats": 17, "cpu function": 52 });
  });

  it("takes a paced scenario's p99 instead of its fixed rate", () => {
    const figures = figuresOf({
      name: "latency",
      status: "ok",
      msgs_per_s: 1_000,
      publish_to_ack: { count: 1, p50_ms: 0.5, p99_ms: 2.5, max_ms: 9 },
    });
    expect(figures).toEqual({ "pub>ack p99 ms": 2.5 });
  });

  it("takes the pipeline's CPU per order of every process but the functions' sum", () => {
    const figures = figuresOf({
      name: "pipeline",
      status: "ok",
      msgs_per_s: 925,
      extra: {
        functions_cpu_us_per_order: 950,
        cpu_us_per_order_order: 382,
        gateway_sim_cpu_us_per_order: 97,
        bridge_cpu_us_per_order: 433,
        clients: 32,
        rss_mb_bridge: "154.5 -> 155.9",
      },
    });
    expect(figures).toEqual({
      "msgs/s": 925,
      "cpu order": 382,
      "cpu gateway-sim": 97,
      "cpu bridge": 433,
    });
  });

  it("has nothing to compare in a failed run", () => {
    expect(figuresOf({ name: "bridge", status: "failed", note: "x" })).toEqual({});
  });
});

describe("summarise", () => {
  const pair = (order: Pair["order"], base: Record<string, number>, head: Record<string, number>): Pair => ({
    order,
    base,
    head,
  });

  it("gives head/base per pair, the range in each order, and CPU against the unchanged process", () => {
    const rows = summarise("bridge", [
      pair(
        ["base", "head"],
        { "msgs/s": 10_000, "cpu bridge": 60, "cpu function": 50 },
        { "msgs/s": 12_000, "cpu bridge": 45, "cpu function": 50 },
      ),
      // The machine slowed for the second pair: every process costs 1.2× as much on both sides.
      pair(
        ["head", "base"],
        { "msgs/s": 8_000, "cpu bridge": 72, "cpu function": 60 },
        { "msgs/s": 8_800, "cpu bridge": 60, "cpu function": 66 },
      ),
    ]);
    const byName = Object.fromEntries(rows.map((r) => [r.figure, r]));
    expect(byName["msgs/s"]).toMatchObject({
      ratios: [1.2, 1.1],
      baseFirst: [1.2, 1.2],
      headFirst: [1.1, 1.1],
      consistent: true,
    });
    expect(byName["cpu bridge"]).toMatchObject({ ratios: [0.75, 0.833], normalised: [0.75, 0.758] });
    expect(byName["cpu function"]?.normalised).toBeUndefined();
  });

  it("calls a figure inconsistent when its pairs fall on both sides of 1", () => {
    const rows = summarise("bridge", [
      pair(["base", "head"], { "msgs/s": 100 }, { "msgs/s": 110 }),
      pair(["head", "base"], { "msgs/s": 100 }, { "msgs/s": 95 }),
    ]);
    expect(rows[0]).toMatchObject({ ratios: [1.1, 0.95], consistent: false });
    expect(formatSummary("bridge", rows)).toContain("base first 1.1×  head first 0.95×");
    expect(formatSummary("bridge", rows)).not.toContain("every pair");
  });

  it("leaves out a figure one side lacks, and a base of zero", () => {
    const rows = summarise("pipeline", [
      pair(
        ["base", "head"],
        { "msgs/s": 900, "cpu nats": 0, "cpu gateway-sim": 97 },
        { "msgs/s": 950, "cpu nats": 200, "cpu gateway-sim": 97 },
      ),
    ]);
    expect(rows.map((r) => [r.figure, r.ratios])).toEqual([
      ["msgs/s", [1.056]],
      ["cpu nats", []],
      ["cpu gateway-sim", [1]],
    ]);
  });
});
