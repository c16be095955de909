import type { ScenarioResult } from "./scenarios/common.ts";

/** The figure a repeated scenario is ranked by: its rate, or for the paced ones its publish → ack p99. */
export function keyFigure(r: ScenarioResult): number | undefined {
  if (r.name === "latency" || r.name === "latency-floor") return r.publish_to_ack?.p99_ms;
  return r.msgs_per_s;
}

/**
 * Of the runs of one scenario, the one with the median key figure (a real run, so its row stays
 * consistent), with every run's figure in `extra.runs`. A failed run counts as a run but is never the
 * median unless all failed.
 */
export function medianRun(runs: readonly ScenarioResult[]): ScenarioResult {
  const ok = runs.filter((r) => r.status === "ok" && keyFigure(r) !== undefined);
  if (ok.length === 0) return runs[runs.length - 1] as ScenarioResult;
  const sorted = [...ok].sort((a, b) => (keyFigure(a) as number) - (keyFigure(b) as number));
  const median = sorted[Math.floor((sorted.length - 1) / 2)] as ScenarioResult;
  if (runs.length === 1) return median;
  const figures = runs.map((r) => (r.status === "ok" ? String(keyFigure(r)) : r.status)).join(" / ");
  return { ...median, extra: { ...median.extra, runs: figures } };
}
