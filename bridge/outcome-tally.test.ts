import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { DURATION_BUCKETS, OutcomeTally } from "./outcome-tally.ts";

/** prom-client's own metrics, as the bridge declared them before the tally. */
function reference() {
  const registry = new Registry();
  const invocations = new Counter({
    name: "jetway_invocations_total",
    help: "Function invocations by route, outcome and HTTP status (none for transport errors).",
    labelNames: ["route", "outcome", "status"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "jetway_invocation_duration_seconds",
    help: "Time from taking a message to settling it.",
    labelNames: ["route", "outcome"] as const,
    buckets: [...DURATION_BUCKETS],
    registers: [registry],
  });
  const add = (route: string, outcome: string, status: number | undefined, seconds: number) => {
    invocations.inc({ route, outcome, status: status === undefined ? "none" : String(status) });
    duration.observe({ route, outcome }, seconds);
  };
  return { registry, add };
}

describe("OutcomeTally", () => {
  it("writes the exposition prom-client writes for the same observations", async () => {
    const ref = reference();
    const tally = new OutcomeTally();
    const registry = new Registry();
    tally.register(registry);
    const routes = ["payment", 'we"ird\\route'];
    const outcomes = ["ack", "retry", "dead_letter"];
    const statuses = [200, 202, 503, 422, undefined];
    // Every bound exactly, values between and beyond the last bound, zero.
    const durations = [0, ...DURATION_BUCKETS, 0.0049, 0.007, 0.3, 29.999, 30.0001, 120];
    let n = 0;
    for (const route of routes)
      for (const outcome of outcomes)
        for (const seconds of durations) {
          const status = statuses[n++ % statuses.length];
          ref.add(route, outcome, status, seconds);
          tally.add(route, outcome, status, seconds);
        }
    expect(await registry.metrics()).toBe(await ref.registry.metrics());
    // The JSON form too, but for prom-client's empty exemplar fields (the bridge keeps no exemplars).
    const withoutExemplars = (metrics: unknown) =>
      JSON.parse(JSON.stringify(metrics, (key, value) => (key === "exemplar" ? undefined : value)));
    expect(withoutExemplars(await registry.getMetricsAsJSON())).toEqual(
      withoutExemplars(await ref.registry.getMetricsAsJSON()),
    );
  });

  it("starts empty, and reset() empties it again", async () => {
    const tally = new OutcomeTally();
    const registry = new Registry();
    tally.register(registry);
    const empty = await registry.metrics();
    expect(empty).toBe(await reference().registry.metrics());
    tally.add("r", "ack", 200, 0.01);
    expect(await registry.metrics()).toContain(
      'jetway_invocations_total{route="r",outcome="ack",status="200"} 1',
    );
    registry.resetMetrics();
    expect(await registry.metrics()).toBe(empty);
  });
});
