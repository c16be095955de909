import type { ScenarioResult } from "./scenarios/common.ts";

export interface TargetCheck {
  target: string;
  value: string;
  pass: boolean | undefined;
}

const find = (results: ScenarioResult[], name: string) =>
  results.find((r) => r.name === name && r.status === "ok");

const check = (
  target: string,
  value: number | undefined,
  pass: (v: number) => boolean,
  unit = "",
): TargetCheck => ({
  target,
  value: value === undefined || Number.isNaN(value) ? "n/a" : `${value}${unit}`,
  pass: value === undefined || Number.isNaN(value) ? undefined : pass(value),
});

/** The project's performance targets, judged on this run's figures (ratios against this run's ceilings). */
export function checkTargets(results: ScenarioResult[]): TargetCheck[] {
  const bridge = find(results, "bridge");
  const js = find(results, "ceiling-js")?.msgs_per_s;
  const http = find(results, "ceiling-http")?.msgs_per_s;
  const ceiling = js !== undefined && http !== undefined ? Math.min(js, http) : undefined;
  const ratio = bridge?.msgs_per_s !== undefined && ceiling ? bridge.msgs_per_s / ceiling : undefined;
  const lat = find(results, "latency")?.publish_to_function;
  const memory = find(results, "memory")?.extra?.rss_delta_mb;
  const pipeline = find(results, "pipeline")?.msgs_per_s;
  return [
    check("bridge >= 12,000 msgs/s", bridge?.msgs_per_s, (v) => v >= 12_000),
    check(
      "bridge >= 0.8 x min(ceiling-js, ceiling-http)",
      ratio && Math.round(ratio * 100) / 100,
      (v) => v >= 0.8,
      "x",
    ),
    check("bridge CPU <= 50 us/msg", bridge?.cpu_us_per_msg?.bridge, (v) => v <= 50, " us"),
    check("bridge-batch >= 50,000 msgs/s", find(results, "bridge-batch")?.msgs_per_s, (v) => v >= 50_000),
    check("latency p50 <= 1 ms (publish->function, 1k/s)", lat?.p50_ms, (v) => v <= 1, " ms"),
    check("latency p99 <= 5 ms (publish->function, 1k/s)", lat?.p99_ms, (v) => v <= 5, " ms"),
    check(
      "backlog RSS delta <= 20 MB",
      typeof memory === "number" ? memory : undefined,
      (v) => v <= 20,
      " MB",
    ),
    check("pipeline >= 2,000 orders/s", pipeline, (v) => v >= 2_000),
  ];
}

/** The note column: what the scenario has to say, then every run's figure when it was repeated. */
function noteFor(r: ScenarioResult, results: ScenarioResult[]): string {
  const runs = r.extra?.runs;
  const note = scenarioNote(r, results);
  if (runs === undefined) return note;
  return note ? `${note}; runs ${runs}` : `runs ${runs}`;
}

function scenarioNote(r: ScenarioResult, results: ScenarioResult[]): string {
  if (r.status !== "ok") return "";
  const floor = find(results, "latency-floor")?.publish_to_ack;
  if (r.name === "latency" && floor && r.publish_to_ack) {
    const times = (a: number, b: number) => (b > 0 ? `${Math.round((a / b) * 10) / 10}x` : "-");
    return (
      `pub>ack vs floor: p50 ${times(r.publish_to_ack.p50_ms, floor.p50_ms)}, ` +
      `p99 ${times(r.publish_to_ack.p99_ms, floor.p99_ms)}`
    );
  }
  const x = r.extra;
  if (!x) return "";
  if (r.name === "ingress")
    return `${x.clients} clients; POST -> 202 p50/p99 ${x.post_p50_ms}/${x.post_p99_ms} ms`;
  if (r.name === "memory") return `idle ${x.idle_rss_mb} MB, delta ${x.rss_delta_mb} MB`;
  if (r.name === "pipeline") {
    const each = Object.entries(x)
      .filter(([key]) => key.startsWith("cpu_us_per_order_"))
      .map(([key, us]) => `${key.slice("cpu_us_per_order_".length)} ${us}`);
    return (
      `completion p50/p99 ${x.completion_p50_ms}/${x.completion_p99_ms} ms at ${x.paced_orders_per_s} orders/s; ` +
      `CPU us/order fn ${x.functions_cpu_us_per_order}${each.length ? ` (${each.join(", ")})` : ""} ` +
      `br ${x.bridge_cpu_us_per_order} nats ${x.nats_cpu_us_per_order} pg ${x.postgres_cpu_us_per_order}` +
      (x.gateway_sim_cpu_us_per_order === undefined ? "" : ` gateway-sim ${x.gateway_sim_cpu_us_per_order}`) +
      (x.driver_cpu_us_per_order === undefined ? "" : ` driver ${x.driver_cpu_us_per_order}`)
    );
  }
  return "";
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length));
const fmt = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "-" : String(v));

/** A fixed-width table of the scenarios, then the targets with pass/fail. */
export function formatReport(results: ScenarioResult[], targets: TargetCheck[]): string {
  const header = [
    "scenario",
    "msgs/s",
    "pub>fn p50/p99 ms",
    "pub>ack p50/p99 ms",
    "cpu us/msg br/nats/fn",
    "bridge RSS MB",
    "note",
  ];
  const rows = results.map((r) => [
    r.name,
    r.status === "ok" ? fmt(r.msgs_per_s) : r.status,
    r.publish_to_function ? `${r.publish_to_function.p50_ms}/${r.publish_to_function.p99_ms}` : "-",
    r.publish_to_ack ? `${r.publish_to_ack.p50_ms}/${r.publish_to_ack.p99_ms}` : "-",
    r.cpu_us_per_msg
      ? `${fmt(r.cpu_us_per_msg.bridge)}/${fmt(r.cpu_us_per_msg.nats)}/${fmt(r.cpu_us_per_msg.function)}`
      : "-",
    fmt(r.bridge_peak_rss_mb),
    r.note ?? noteFor(r, results),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => pad(c, widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const out = [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line), "", "targets:"];
  for (const t of targets) {
    const verdict = t.pass === undefined ? "n/a " : t.pass ? "PASS" : "FAIL";
    out.push(`  ${verdict}  ${pad(t.target, 48)} ${t.value}`);
  }
  return out.join("\n");
}
