import { describe, expect, it } from "vitest";
import type { OpenCause } from "./circuit.ts";
import { createLogger } from "./logger.ts";
import { type RunningBridge, startBridge } from "./main.ts";
import { HttpFunction, waitFor } from "./testing/http-function.ts";
import { oneRouteBridgeConfig } from "./testing/one-route-bridge.ts";
import { useHarness } from "./testing/route-fixture.ts";

const { h, cleanups } = useHarness();
const silent = createLogger({ level: "silent" });

describe("circuit hints between replicas", () => {
  it("a replica opens its circuit at its first failure once another's has opened, not after `failures` more", async () => {
    const fn = await HttpFunction.start(() => ({ status: 503, body: { error: "gateway down" } }));
    cleanups.push(() => fn.close());
    const failures = 5;
    const { config, subject } = oneRouteBridgeConfig(h.server.url, fn.url, {
      concurrency: 1,
      // No probe and no redelivery within the test: every request the function sees is a first attempt.
      circuit_breaker: { failures, open_for: "30s", max_open: "1m" },
      backoff: ["30s"],
      max_deliver: 100,
      // Naked messages count against it until they come back: room for all of them, on either replica.
      max_ack_pending: 100,
    });
    const bridges: RunningBridge[] = [];
    const opened: OpenCause[] = [];
    for (let i = 0; i < 2; i++) {
      const bridge = await startBridge(config, { logger: silent });
      cleanups.push(() => bridge.shutdown());
      bridge.events.on("circuit:open", ({ cause }) => opened.push(cause));
      bridges.push(bridge);
    }
    const paused = () => bridges.filter((b) => b.readiness().paused?.includes("paced")).length;

    // A low rate, one message at a time: failures on the two replicas add up one by one.
    let hintTime = true;
    for (let n = 0; n < 40 && paused() < 2; n++) {
      await h.js.publish(subject, JSON.stringify({ n }));
      await new Promise((r) => setTimeout(r, 150));
      // Once the first has opened, its hint gets time to arrive on a busy machine before the next failure.
      if (paused() === 1 && hintTime) {
        hintTime = false;
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
    await waitFor("both circuits open", () => paused() === 2, 2_000);
    expect(opened.sort()).toEqual(["elsewhere", "failures"]);
    // The first replica's five, and at most four of the second's: without the hint it would need five too.
    expect(fn.requests.length).toBeGreaterThanOrEqual(failures);
    expect(fn.requests.length).toBeLessThan(2 * failures);
  });
});
