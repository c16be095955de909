import { describe, expect, it } from "vitest";
import { BridgeEvents } from "../../bridge/events.ts";
import { BridgeMetrics } from "../../bridge/metrics.ts";
import { ingressRequests } from "./pipeline.ts";

describe("the pipeline's reading of the bridge's metrics", () => {
  it("counts the ingress requests every event of which was stored", async () => {
    const metrics = new BridgeMetrics(new BridgeEvents(), { defaultMetrics: false });
    expect(ingressRequests(await metrics.metrics())).toBe(0);
    for (const status of [202, 202, 207, 202, 503]) metrics.ingress(status);
    expect(ingressRequests(await metrics.metrics())).toBe(3);
  });
});
