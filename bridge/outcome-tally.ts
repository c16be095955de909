import type { Metric, Registry } from "prom-client";

/** Upper bounds (seconds) of `jetway_invocation_duration_seconds`. */
export const DURATION_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

const INVOCATIONS = {
  name: "jetway_invocations_total",
  help: "Function invocations by route, outcome and HTTP status (none for transport errors).",
};
const DURATION = {
  name: "jetway_invocation_duration_seconds",
  help: "Time from taking a message to settling it.",
};

/** One route and outcome: durations by bucket, and counts by HTTP status. */
interface Cell {
  buckets: Float64Array;
  sum: number;
  count: number;
  statuses: Map<number | undefined, number>;
}

type Series = { labels: Record<string, string | number>; value: number; metricName?: string };

/**
 * Settled invocations counted in plain numbers as they happen, turned into Prometheus series only when
 * scraped. prom-client builds a labels object and a hash string for every `inc()` and `observe()`; the
 * bridge settles tens of thousands of messages a second, and did that twice for each (bench/README). The
 * exposition is prom-client's own, byte for byte (outcome-tally.test.ts compares the two).
 */
export class OutcomeTally {
  private readonly cells = new Map<string, Map<string, Cell>>();

  add(route: string, outcome: string, status: number | undefined, seconds: number): void {
    let outcomes = this.cells.get(route);
    if (!outcomes) {
      outcomes = new Map();
      this.cells.set(route, outcomes);
    }
    let cell = outcomes.get(outcome);
    if (!cell) {
      cell = { buckets: new Float64Array(DURATION_BUCKETS.length), sum: 0, count: 0, statuses: new Map() };
      outcomes.set(outcome, cell);
    }
    cell.statuses.set(status, (cell.statuses.get(status) ?? 0) + 1);
    cell.sum += seconds;
    cell.count++;
    // As prom-client files it: the first bound at or above the value; above the last, only +Inf counts it.
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= (DURATION_BUCKETS[i] as number)) {
        cell.buckets[i] = (cell.buckets[i] as number) + 1;
        break;
      }
    }
  }

  /** Registers `jetway_invocations_total` and `jetway_invocation_duration_seconds` on the registry. */
  register(registry: Registry): void {
    registry.registerMetric(this.metric(INVOCATIONS, "counter", () => this.counts()));
    registry.registerMetric(this.metric(DURATION, "histogram", () => this.durations()));
  }

  private metric(
    meta: { name: string; help: string },
    type: "counter" | "histogram",
    values: () => Series[],
  ) {
    const metric = {
      ...meta,
      type,
      aggregator: "sum",
      get: async () => ({ ...meta, type, aggregator: "sum", values: values() }),
      reset: () => this.cells.clear(),
    };
    return metric as unknown as Metric;
  }

  private counts(): Series[] {
    const series: Series[] = [];
    for (const [route, outcomes] of this.cells) {
      for (const [outcome, cell] of outcomes) {
        for (const [status, n] of cell.statuses) {
          series.push({
            labels: { route, outcome, status: status === undefined ? "none" : String(status) },
            value: n,
          });
        }
      }
    }
    return series;
  }

  private durations(): Series[] {
    const series: Series[] = [];
    const bucket = `${DURATION.name}_bucket`;
    for (const [route, outcomes] of this.cells) {
      for (const [outcome, cell] of outcomes) {
        let below = 0;
        DURATION_BUCKETS.forEach((le, i) => {
          below += cell.buckets[i] as number;
          series.push({ labels: { le, route, outcome }, value: below, metricName: bucket });
        });
        series.push({ labels: { le: "+Inf", route, outcome }, value: cell.count, metricName: bucket });
        series.push({ labels: { route, outcome }, value: cell.sum, metricName: `${DURATION.name}_sum` });
        series.push({ labels: { route, outcome }, value: cell.count, metricName: `${DURATION.name}_count` });
      }
    }
    return series;
  }
}
