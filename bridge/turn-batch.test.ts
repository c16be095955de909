import { afterEach, describe, expect, it, vi } from "vitest";
import { TurnBatch } from "./turn-batch.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("TurnBatch", () => {
  it("runs the calls of one turn together at its end, in order, each with its own result", async () => {
    const batch = new TurnBatch();
    const immediates = vi.spyOn(globalThis, "setImmediate");
    const ran: string[] = [];
    const call =
      (name: string, fail = false) =>
      () => {
        ran.push(name);
        return fail ? Promise.reject(new Error(name)) : Promise.resolve(name);
      };
    const a = batch.run(call("a"));
    const b = batch.run(call("b", true));
    const c = batch.run(() => {
      throw new Error("c threw");
    });
    const d = batch.run(call("d"));
    expect(ran).toEqual([]);
    expect(immediates).toHaveBeenCalledTimes(1);
    await expect(a).resolves.toBe("a");
    await expect(b).rejects.toThrow("b");
    await expect(c).rejects.toThrow("c threw");
    await expect(d).resolves.toBe("d");
    expect(ran).toEqual(["a", "b", "d"]);
    // A later turn gets a run of its own.
    await expect(batch.run(call("e"))).resolves.toBe("e");
    expect(immediates).toHaveBeenCalledTimes(2);
  });
});
