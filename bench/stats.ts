/** Latency and CPU arithmetic for the benchmark: pure, so it has unit tests. */

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN for none. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export interface LatencySummary {
  count: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

/** Summarises nanosecond latencies as milliseconds. */
export function summarize(latenciesNs: ArrayLike<number>): LatencySummary {
  const ms = Float64Array.from(latenciesNs, (ns) => ns / 1e6).sort();
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    count: ms.length,
    p50_ms: round(percentile(ms, 50)),
    p99_ms: round(percentile(ms, 99)),
    max_ms: round(ms.length > 0 ? (ms[ms.length - 1] as number) : Number.NaN),
  };
}

/** CPU seconds (user + system) from the text of /proc/<pid>/stat; clock ticks per second is CLK_TCK. */
export function parseProcStat(text: string, ticksPerSecond = 100): number {
  // The command name may hold spaces or parentheses: the fields we want follow the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // Field 3 (state) is fields[0], so utime (14) and stime (15) are at 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error("unreadable /proc stat line");
  return (utime + stime) / ticksPerSecond;
}

/** A `Vm*:` value of /proc/<pid>/status in bytes (the kernel prints kB). */
export function parseProcStatus(text: string, field: "VmHWM" | "VmRSS"): number {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(text);
  if (!match) throw new Error(`${field} missing from /proc status`);
  return Number(match[1]) * 1024;
}

/** Pairs publish and ack times by stream sequence; returns ack − publish for each sequence seen in both. */
export function joinBySeq(
  published: ReadonlyMap<number, number>,
  ackSeqs: ArrayLike<number>,
  ackNs: ArrayLike<number>,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < ackSeqs.length; i++) {
    const sent = published.get(ackSeqs[i] as number);
    if (sent !== undefined) out.push((ackNs[i] as number) - sent);
  }
  return out;
}
