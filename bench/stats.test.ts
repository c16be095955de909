import { describe, expect, it } from "vitest";
import { joinBySeq, parseProcStat, parseProcStatus, percentile, summarize } from "./stats.ts";

describe("percentile", () => {
  it("uses the nearest rank on unsorted input", () => {
    const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect(percentile(values, 50)).toBe(5);
    expect(percentile(values, 90)).toBe(9);
    expect(percentile(values, 99)).toBe(10);
    expect(percentile(values, 0)).toBe(1);
  });
  it("is NaN for no values", () => {
    expect(percentile([], 50)).toBeNaN();
  });
});

describe("summarize", () => {
  it("reports milliseconds from nanoseconds", () => {
    const ns = Array.from({ length: 100 }, (_, i) => (i + 1) * 1e6);
    expect(summarize(ns)).toEqual({ count: 100, p50_ms: 50, p99_ms: 99, max_ms: 100 });
  });
});

describe("/proc parsing", () => {
  it("sums utime and stime even when the command name holds spaces and parentheses", () => {
    const line =
      "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 11 0 106375 3133440 381";
    expect(parseProcStat(line, 100)).toBe(3);
  });
  it("rejects a line without the cpu fields", () => {
    expect(() => parseProcStat("1 (x) S 1")).toThrow();
  });
  it("reads VmHWM and VmRSS in bytes", () => {
    const status = "Name:\tnode\nVmPeak:\t 999 kB\nVmHWM:\t   81920 kB\nVmRSS:\t   40960 kB\n";
    expect(parseProcStatus(status, "VmHWM")).toBe(81920 * 1024);
    expect(parseProcStatus(status, "VmRSS")).toBe(40960 * 1024);
  });
});

describe("joinBySeq", () => {
  it("pairs acks with their publish time and skips unknown sequences", () => {
    const published = new Map([
      [1, 100],
      [2, 200],
    ]);
    expect(joinBySeq(published, [2, 1, 3], [260, 150, 999])).toEqual([60, 50]);
  });
});
