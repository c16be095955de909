import { describe, expect, it } from "vitest";
import { checkTargets, formatReport } from "./report.ts";
import type { ScenarioResult } from "./scenarios/common.ts";

const ok = (name: string, fields: Partial<ScenarioResult>): ScenarioResult => ({
  name,
  status: "ok",
  ...fields,
});

describe("checkTargets", () => {
  it("judges the bridge against the slower ceiling of the same run", () => {
    const targets = checkTargets([
      ok("ceiling-js", { msgs_per_s: 50_000 }),
      ok("ceiling-http", { msgs_per_s: 10_000 }),
      ok("bridge", { msgs_per_s: 9_000, cpu_us_per_msg: { bridge: 60 } }),
    ]);
    const byName = Object.fromEntries(targets.map((t) => [t.target, t]));
    expect(byName["bridge >= 0.8 x min(ceiling-js, ceiling-http)"]).toMatchObject({
      value: "0.9x",
      pass: true,
    });
    expect(byName["bridge >= 12,000 msgs/s"]?.pass).toBe(false);
    expect(byName["bridge CPU <= 50 us/msg"]).toMatchObject({ value: "60 us", pass: false });
  });

  it("says n/a for scenarios that did not run or are pending", () => {
    const targets = checkTargets([{ name: "bridge-batch", status: "pending", msgs_per_s: 99_999 }]);
    expect(targets.every((t) => t.pass === undefined)).toBe(true);
  });

  it("reads the latency and memory targets from their scenarios", () => {
    const targets = checkTargets([
      ok("latency", { publish_to_function: { count: 10, p50_ms: 0.8, p99_ms: 7, max_ms: 9 } }),
      ok("memory", { extra: { rss_delta_mb: 12 } }),
    ]);
    const pass = Object.fromEntries(targets.map((t) => [t.target, t.pass]));
    expect(pass["latency p50 <= 1 ms (publish->function, 1k/s)"]).toBe(true);
    expect(pass["latency p99 <= 5 ms (publish->function, 1k/s)"]).toBe(false);
    expect(pass["backlog RSS delta <= 20 MB"]).toBe(true);
  });
});

describe("formatReport", () => {
  it("prints one row per scenario and a verdict per target", () => {
    const results = [ok("bridge", { msgs_per_s: 9_000 }), { name: "pipeline", status: "pending" as const }];
    const text = formatReport(results, checkTargets(results));
    expect(text).toMatch(/^bridge\s+9000/m);
    expect(text).toMatch(/^pipeline\s+pending/m);
    expect(text).toMatch(/FAIL\s+bridge >= 12,000 msgs\/s/);
    const repeated = [ok("bridge", { msgs_per_s: 9_000, extra: { runs: "8000 / 9000 / 9500" } })];
    expect(formatReport(repeated, checkTargets(repeated))).toMatch(/^bridge\s.*runs 8000 \/ 9000 \/ 9500$/m);
  });

  it("lists the pipeline's CPU per order function by function, and the ingress's clients", () => {
    const results = [
      ok("pipeline", {
        msgs_per_s: 400,
        extra: {
          completion_p50_ms: 40,
          completion_p99_ms: 60,
          paced_orders_per_s: 200,
          functions_cpu_us_per_order: 2300,
          cpu_us_per_order_order: 1100,
          cpu_us_per_order_audit: 300,
          bridge_cpu_us_per_order: 900,
          nats_cpu_us_per_order: 300,
          postgres_cpu_us_per_order: 550,
          gateway_sim_cpu_us_per_order: 250,
          driver_cpu_us_per_order: 120,
        },
      }),
      ok("ingress", { msgs_per_s: 15_000, extra: { clients: 32, post_p50_ms: 1.7, post_p99_ms: 6.7 } }),
    ];
    const text = formatReport(results, checkTargets(results));
    expect(text).toMatch(
      /CPU us\/order fn 2300 \(order 1100, audit 300\) br 900 nats 300 pg 550 gateway-sim 250 driver 120/,
    );
    expect(text).toMatch(/^ingress\s+15000 .*32 clients; POST -> 202 p50\/p99 1.7\/6.7 ms/m);
  });

  it("sets the latency beside the floor measured in the same run", () => {
    const lat = (p50_ms: number, p99_ms: number) => ({ count: 10, p50_ms, p99_ms, max_ms: p99_ms });
    const results = [
      ok("latency-floor", { msgs_per_s: 1_000, publish_to_ack: lat(0.4, 2) }),
      ok("latency", { msgs_per_s: 1_000, publish_to_ack: lat(1, 15) }),
    ];
    expect(formatReport(results, checkTargets(results))).toMatch(
      /^latency\s.*pub>ack vs floor: p50 2\.5x, p99 7\.5x$/m,
    );
  });
});
