/**
 * The arithmetic of `bench/compare.ts`: which figures of a scenario are compared, the order of the runs,
 * and how the pairs' ratios are summed up. Kept apart from the process handling so it can be tested.
 */
import type { ScenarioResult } from "./scenarios/common.ts";

export type Side = "base" | "head";

/**
 * The run order of `rounds` pairs: AB, BA, AB, … A machine here read the second run of a pair faster in
 * 5 of 6 pairs of the same code (finding 19), so a ratio only counts when it holds in both orders.
 */
export function pairOrder(rounds: number): [Side, Side][] {
  return Array.from({ length: rounds }, (_, i) => (i % 2 === 0 ? ["base", "head"] : ["head", "base"]));
}

/** The figures compared for one scenario, by name: rates, CPU per message (or per order), latency. */
export function figuresOf(r: ScenarioResult): Record<string, number> {
  const out: Record<string, number> = {};
  if (r.status !== "ok") return out;
  const paced = r.name === "latency" || r.name === "latency-floor";
  if (r.msgs_per_s !== undefined && !paced) out["msgs/s"] = r.msgs_per_s;
  for (const [process, us] of Object.entries(r.cpu_us_per_msg ?? {})) {
    if (us !== undefined) out[`cpu ${process}`] = us;
  }
  if (paced && r.publish_to_ack) out["pub>ack p99 ms"] = r.publish_to_ack.p99_ms;
  for (const [key, value] of Object.entries(r.extra ?? {})) {
    if (typeof value !== "number") continue;
    const fn = /^cpu_us_per_order_(.+)$/.exec(key)?.[1];
    const other = /^(.+)_cpu_us_per_order$/.exec(key)?.[1];
    if (fn) out[`cpu ${fn}`] = value;
    else if (other && other !== "functions") out[`cpu ${other.replace("_", "-")}`] = value;
  }
  return out;
}

/**
 * The process whose code a change to the bridge or the functions leaves alone, so its CPU moves only with
 * the machine: the null function in the bench's own scenarios, the gateway simulator in the pipeline.
 */
export function referenceOf(scenario: string): string | undefined {
  if (scenario === "pipeline") return "cpu gateway-sim";
  if (scenario === "ceiling-js" || scenario === "ingress") return undefined;
  return "cpu function";
}

export interface Pair {
  order: [Side, Side];
  base: Record<string, number>;
  head: Record<string, number>;
}

export interface FigureSummary {
  figure: string;
  /** head / base of each pair, in run order. */
  ratios: number[];
  /** The same with both sides' CPU divided by the reference process's first (CPU figures only). */
  normalised?: number[];
  /** Min and max of the ratios of the pairs run base first, and of those run head first. */
  baseFirst: [number, number] | undefined;
  headFirst: [number, number] | undefined;
  /** Every pair's ratio on the same side of 1 (all above or all below). */
  consistent: boolean;
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;
const range = (values: number[]): [number, number] | undefined =>
  values.length === 0 ? undefined : [Math.min(...values), Math.max(...values)];

/** head / base per figure over the pairs, with the reference-normalised CPU where there is one. */
export function summarise(scenario: string, pairs: readonly Pair[]): FigureSummary[] {
  const reference = referenceOf(scenario);
  const figures = new Set(pairs.flatMap((p) => Object.keys(p.base).filter((k) => k in p.head)));
  return [...figures].map((figure) => {
    const complete = pairs.filter((p) => p.base[figure] && p.head[figure] !== undefined);
    const ratios = complete.map((p) => round3((p.head[figure] as number) / (p.base[figure] as number)));
    const baseFirst = range(ratios.filter((_, i) => complete[i]?.order[0] === "base"));
    const headFirst = range(ratios.filter((_, i) => complete[i]?.order[0] === "head"));
    const summary: FigureSummary = {
      figure,
      ratios,
      baseFirst,
      headFirst,
      consistent: ratios.length > 0 && (ratios.every((r) => r > 1) || ratios.every((r) => r < 1)),
    };
    if (reference && figure.startsWith("cpu ") && figure !== reference) {
      const normalised = complete.flatMap((p) => {
        const [hr, br] = [p.head[reference], p.base[reference]];
        return hr && br ? [round3((p.head[figure] as number) / hr / ((p.base[figure] as number) / br))] : [];
      });
      if (normalised.length === complete.length) summary.normalised = normalised;
    }
    return summary;
  });
}

const fmtRange = (r: [number, number] | undefined) =>
  r === undefined ? "-" : r[0] === r[1] ? `${r[0]}×` : `${r[0]}–${r[1]}×`;

/** One line per figure: ratios in run order, the range in each order, the normalised CPU. */
export function formatSummary(scenario: string, rows: readonly FigureSummary[]): string {
  const reference = referenceOf(scenario);
  const lines = [`${scenario}${reference ? ` (CPU also against ${reference.slice(4)})` : ""}`];
  const width = Math.max(...rows.map((r) => r.figure.length), 6);
  for (const r of rows) {
    const norm = r.normalised ? `  normalised ${r.normalised.join(" / ")}` : "";
    lines.push(
      `  ${r.figure.padEnd(width)}  head/base ${r.ratios.join(" / ")}  base first ${fmtRange(r.baseFirst)}` +
        `  head first ${fmtRange(r.headFirst)}${r.consistent ? "  (every pair)" : ""}${norm}`,
    );
  }
  return lines.join("\n");
}
