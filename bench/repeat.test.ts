import { describe, expect, it } from "vitest";
import { medianRun } from "./repeat.ts";
import type { ScenarioResult } from "./scenarios/common.ts";

const run = (msgs_per_s: number, note = ""): ScenarioResult => ({
  name: "bridge",
  status: "ok",
  msgs_per_s,
  note,
});
const lat = (p99_ms: number): ScenarioResult => ({
  name: "latency",
  status: "ok",
  publish_to_ack: { count: 1, p50_ms: 1, p99_ms, max_ms: p99_ms },
});

describe("medianRun", () => {
  it("keeps the run with the median rate, whole, and lists every run's figure in order", () => {
    const picked = medianRun([run(9_000, "a"), run(12_000, "b"), run(10_000, "c")]);
    expect(picked).toMatchObject({ msgs_per_s: 10_000, note: "c", extra: { runs: "9000 / 12000 / 10000" } });
  });

  it("ranks the paced scenarios by publish -> ack p99, takes the lower middle of an even count", () => {
    expect(medianRun([lat(20), lat(8), lat(12), lat(30)]).publish_to_ack?.p99_ms).toBe(12);
  });

  it("never picks a failed run while another succeeded, and leaves a single run as it is", () => {
    const failed: ScenarioResult = { name: "bridge", status: "failed", note: "boom" };
    expect(medianRun([failed, run(5_000), failed])).toMatchObject({
      msgs_per_s: 5_000,
      extra: { runs: "failed / 5000 / failed" },
    });
    expect(medianRun([run(7_000)])).toEqual(run(7_000));
    expect(medianRun([failed])).toBe(failed);
  });
});
