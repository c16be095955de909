import { describe, expect, it } from "vitest";
import { Coalescer } from "./coalesce.ts";

/** A run that records each batch and doubles numbers; resolves when `release` is called. */
function recorder() {
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const run = (items: number[]) => {
    batches.push(items);
    return new Promise<number[]>((resolve) => releases.push(() => resolve(items.map((n) => n * 2))));
  };
  const releaseAll = () => {
    for (const release of releases.splice(0)) release();
  };
  return { batches, run, releaseAll };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("Coalescer", () => {
  it("gives one run the calls of one turn, in order, and each call its own result", async () => {
    const r = recorder();
    const c = new Coalescer(r.run);
    const calls = [1, 2, 3].map((n) => c.add(n));
    await nextTurn();
    r.releaseAll();
    expect(await Promise.all(calls)).toEqual([2, 4, 6]);
    expect(r.batches).toEqual([[1, 2, 3]]);
  });

  it("holds calls made while a batch runs and sends them together once it is done", async () => {
    const r = recorder();
    const c = new Coalescer(r.run);
    const first = c.add(1);
    await nextTurn();
    const later = [c.add(2), c.add(3)];
    await nextTurn();
    const more = c.add(4);
    await nextTurn();
    expect(r.batches).toEqual([[1]]);
    r.releaseAll();
    await first;
    await nextTurn();
    r.releaseAll();
    expect(await Promise.all([...later, more])).toEqual([4, 6, 8]);
    expect(r.batches).toEqual([[1], [2, 3, 4]]);
  });

  it("runs up to maxInFlight batches at once and splits at maxBatch", async () => {
    const r = recorder();
    const c = new Coalescer(r.run, { maxBatch: 2, maxInFlight: 2 });
    const calls = [1, 2, 3, 4, 5].map((n) => c.add(n));
    await nextTurn();
    expect(r.batches).toEqual([
      [1, 2],
      [3, 4],
    ]);
    r.releaseAll();
    await Promise.all(calls.slice(0, 4));
    await nextTurn();
    r.releaseAll();
    expect(await Promise.all(calls)).toEqual([2, 4, 6, 8, 10]);
    expect(r.batches).toEqual([[1, 2], [3, 4], [5]]);
  });

  it("rejects only the call whose result is an Error", async () => {
    const c = new Coalescer(async (items: number[]) =>
      items.map((n) => (n === 2 ? new RangeError("two is refused") : n)),
    );
    const results = await Promise.allSettled([1, 2, 3].map((n) => c.add(n)));
    expect(results.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(RangeError);
  });

  it("rejects the whole batch when run throws or miscounts, and keeps serving later calls", async () => {
    let mode: "throw" | "short" | "ok" = "throw";
    const c = new Coalescer(async (items: number[]) => {
      if (mode === "throw") throw new Error("database down");
      return mode === "short" ? items.slice(1) : items;
    });
    await expect(Promise.all([c.add(1), c.add(2)])).rejects.toThrow("database down");
    mode = "short";
    await expect(c.add(3)).rejects.toThrow("answered 0 results for 1 items");
    mode = "ok";
    expect(await c.add(4)).toBe(4);
  });
});
