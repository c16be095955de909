import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { handleSignals, once } from "./shutdown.ts";

const logger = createLogger({ level: "silent" });

describe("handleSignals", () => {
  it("drains on the first signal and exits 0; a second signal forces exit 1", async () => {
    const exits: number[] = [];
    let release: () => void = () => {};
    const drained = new Promise<void>((resolve) => {
      release = resolve;
    });
    let calls = 0;
    const remove = handleSignals({
      logger,
      signals: ["SIGUSR2"],
      exit: (code) => exits.push(code),
      onShutdown: () => {
        calls++;
        return drained;
      },
    });
    process.emit("SIGUSR2", "SIGUSR2");
    expect(calls).toBe(1);
    expect(exits).toEqual([]);
    process.emit("SIGUSR2", "SIGUSR2");
    expect(exits).toEqual([1]);
    release();
    await drained;
    await new Promise((r) => setImmediate(r));
    expect(exits).toEqual([1, 0]);
    expect(calls).toBe(1);
    remove();
  });

  it("exits 1 when the graceful stop fails", async () => {
    const exits: number[] = [];
    const remove = handleSignals({
      logger,
      signals: ["SIGUSR2"],
      exit: (code) => exits.push(code),
      onShutdown: async () => {
        throw new Error("drain failed");
      },
    });
    process.emit("SIGUSR2", "SIGUSR2");
    await new Promise((r) => setImmediate(r));
    expect(exits).toEqual([1]);
    remove();
  });
});

describe("once", () => {
  it("runs the function a single time and shares its promise", async () => {
    let runs = 0;
    const stop = once(async () => {
      runs++;
    });
    await Promise.all([stop(), stop(), stop()]);
    expect(runs).toBe(1);
  });
});
