import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { type RunningBridge, startBridge } from "./main.ts";
import { openPresence, Presence, presenceBucket, ReplicaCount, readReports } from "./presence.ts";
import { HttpFunction, waitFor } from "./testing/http-function.ts";
import { oneRouteBridgeConfig, pacedGauge } from "./testing/one-route-bridge.ts";
import { ShareRecorder as Shares } from "./testing/presence.ts";
import { useHarness } from "./testing/route-fixture.ts";

const { h, cleanups } = useHarness();
const silent = createLogger({ level: "silent" });
const uid = () => Math.random().toString(36).slice(2, 8);

describe("ReplicaCount", () => {
  it("takes more replicas at once, fewer only when two readings in a row agree", () => {
    const count = new ReplicaCount();
    expect(count.read(1)).toBe(1);
    expect(count.read(3)).toBe(3);
    // One reading short (a late put) changes nothing, and the streak starts again after it.
    expect(count.read(2)).toBeUndefined();
    expect(count.read(3)).toBeUndefined();
    expect(count.read(2)).toBeUndefined();
    expect(count.read(1)).toBe(1);
    expect(count.read(1)).toBeUndefined();
    expect(count.read(2)).toBe(2);
  });
});

describe("Presence, against a real nats-server", () => {
  const INTERVAL = 200;

  async function replica(control: { bucket: string; replicas: number }, routes: Record<string, Shares>) {
    const kv = await openPresence(h.nc, control, 1_500);
    const presence = new Presence({
      kv,
      jsm: h.jsm,
      bucket: presenceBucket(control),
      routes: new Map(Object.entries(routes)),
      rateLimited: new Set(Object.keys(routes)),
      log: silent,
      intervalMs: INTERVAL,
    });
    cleanups.push(() => presence.stop());
    return presence;
  }

  it("counts the replicas of each route; one that stops is dropped within two counts", async () => {
    const control = { bucket: `p-${uid()}`, replicas: 1 };
    const a = { paid: new Shares(), other: new Shares() };
    await (await replica(control, a)).start();
    expect(a.paid.seen).toEqual([1]);
    const b = { paid: new Shares() };
    const second = await replica(control, b);
    await second.start();
    // The newcomer counts after waiting out the others' next count: both agree before it sends.
    expect(b.paid.seen).toEqual([2]);
    expect(a.paid.last).toBe(2);
    expect(a.other.seen).toEqual([1]);
    await second.stop();
    await waitFor("the stopped replica dropped", () => a.paid.last === 1, 3 * INTERVAL + 500);
    expect(a.paid.seen).toEqual([1, 2, 1]);
  });

  it("forgets a replica that died without a word once its key expires, and not before", async () => {
    const control = { bucket: `p-${uid()}`, replicas: 1 };
    const a = { paid: new Shares() };
    const kv = await openPresence(h.nc, control, 1_500);
    // What a replica killed -9 leaves: a key nobody puts again.
    await kv.put("paid.dead-replica", new Date().toISOString());
    const since = performance.now();
    await (await replica(control, a)).start();
    expect(a.paid.seen).toEqual([2]);
    await waitFor("the dead replica forgotten", () => a.paid.last === 1, 5_000);
    expect(performance.now() - since).toBeGreaterThanOrEqual(1_000);
  });
});

describe("bridge replicas sharing a route's rate_limit", () => {
  it("split it between them, and one takes all of it when the other stops", async () => {
    const fn = await HttpFunction.start();
    cleanups.push(() => fn.close());
    const { config, subject } = oneRouteBridgeConfig(h.server.url, fn.url, { rate_limit: "20/s" });
    const bridges: RunningBridge[] = [];
    const sent: number[] = [];
    for (let i = 0; i < 2; i++) {
      const bridge = await startBridge(config, { logger: silent });
      cleanups.push(() => bridge.shutdown());
      bridge.events.on("invoke:start", () => sent.push(performance.now()));
      bridges.push(bridge);
    }
    const [a, b] = bridges as [RunningBridge, RunningBridge];
    const rate = (bridge: RunningBridge) => pacedGauge(bridge.port, "jetway_route_rate_limit");
    await waitFor("the first replica counting the second", async () => (await rate(a)) === 10);
    expect(await rate(b)).toBe(10);

    for (let n = 0; n < 200; n++) await h.js.publish(subject, JSON.stringify({ n }));
    await waitFor("60 sent", () => sent.length >= 60);
    // Together at the route's 20/s: after a burst of two each, 56 more take 2.8 s (each alone would
    // send at 20/s, and the two 60 in 1.4 s).
    expect((sent[59] as number) - (sent[0] as number)).toBeGreaterThanOrEqual(2_500);
    // And both send: one replica holding the backlog alone would take twice as long at its half.
    expect((sent[59] as number) - (sent[0] as number)).toBeLessThan(5_000);

    await b.shutdown();
    await waitFor("the remaining replica taking the whole limit", async () => (await rate(a)) === 20, 3_000);
    const from = sent.length;
    await waitFor("40 more sent", () => sent.length >= from + 40, 10_000);
    // Alone at 20/s: 40 in ~2 s, not the ~4 s of half the limit.
    expect((sent[from + 39] as number) - (sent[from] as number)).toBeLessThan(3_000);
  });
});

describe("what a bridge reports of its routes", () => {
  it("its circuit breaker opened by a failing function, with what it holds; closed again after", async () => {
    let down = true;
    const fn = await HttpFunction.start(() =>
      down ? { status: 503, body: { error: "down" } } : { status: 200 },
    );
    cleanups.push(() => fn.close());
    const { config, subject } = oneRouteBridgeConfig(h.server.url, fn.url, {
      circuit_breaker: { failures: 3, open_for: "500ms" },
    });
    const bridge = await startBridge(config, { logger: silent });
    cleanups.push(() => bridge.shutdown());
    const reports = async () => (await readReports(h.jsm, presenceBucket(config.control))).get("paced") ?? [];
    await waitFor("the bridge's first report", async () => (await reports()).length === 1);
    expect(await reports()).toEqual([
      expect.objectContaining({ breaker_open: false, held: 0, in_flight: 0, waiting: 0 }),
    ]);

    for (let n = 0; n < 10; n++) await h.js.publish(subject, JSON.stringify({ n }));
    const open = await waitFor("the open circuit reported", async () => {
      const [report] = await reports();
      return report?.breaker_open && report.held > 0 ? report : undefined;
    });
    expect(open?.held).toBeLessThanOrEqual(10);
    down = false;
    await waitFor("the closed circuit reported", async () => {
      const [report] = await reports();
      return report && !report.breaker_open && report.held === 0;
    });
    await bridge.shutdown();
    // Gone at once, not when its key expires.
    expect(await reports()).toEqual([]);
  });
});
