import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { startBridge } from "./main.ts";
import { RatePacer } from "./rate-limit.ts";
import { HttpFunction, type RecordedRequest, waitFor } from "./testing/http-function.ts";
import { oneRouteBridgeConfig, pacedGauge } from "./testing/one-route-bridge.ts";
import { type RouteFixture, routeFixture, useHarness } from "./testing/route-fixture.ts";

/** Sends one message at a time as soon as the pacer allows, from `start`; returns when each went. */
function paced(pacer: RatePacer, messages: number, start = 0): number[] {
  const sent: number[] = [];
  let now = start;
  while (sent.length < messages) {
    const wait = pacer.delay(1, now);
    now += wait;
    expect(pacer.take(1, now)).toBe(true);
    sent.push(now);
  }
  pacer.stop();
  return sent;
}

describe("RatePacer", () => {
  it("lets a tenth of a second's worth go at once, then spaces the rest at the limit", () => {
    const sent = paced(new RatePacer({ messages: 100, perMs: 1_000 }, () => {}), 30);
    expect(sent.slice(0, 10)).toEqual(Array(10).fill(0));
    expect(sent.slice(10)).toEqual(Array.from({ length: 20 }, (_, i) => (i + 1) * 10));
  });

  it("sends one at a time, evenly, when a tenth of a second holds less than one", () => {
    const sent = paced(new RatePacer({ messages: 2, perMs: 1_000 }, () => {}), 4);
    expect(sent).toEqual([0, 500, 1_000, 1_500]);
  });

  it("refills while the route is quiet, but no more than the burst", () => {
    const pacer = new RatePacer({ messages: 100, perMs: 1_000 }, () => {});
    paced(pacer, 30);
    // Quiet for a second: again ten at once, not a hundred.
    const sent = paced(pacer, 12, 1_200);
    expect(sent).toEqual([...Array(10).fill(1_200), 1_210, 1_220]);
  });

  it("lets a batch larger than the burst go when nothing is owed, and makes the next wait for it", () => {
    const pacer = new RatePacer({ messages: 100, perMs: 1_000 }, () => {});
    expect(pacer.take(50, 0)).toBe(true);
    expect(pacer.delay(50, 0)).toBe(500);
    expect(pacer.delay(50, 499)).toBe(1);
    expect(pacer.take(50, 500)).toBe(true);
    expect(pacer.delay(1, 500)).toBe(410);
    pacer.stop();
  });

  it("keeps the average for any mix of sizes: 1,000 messages at 100/s take ~10 s", () => {
    const pacer = new RatePacer({ messages: 100, perMs: 1_000 }, () => {});
    let now = 0;
    let sent = 0;
    for (let i = 0; sent < 1_000; i++) {
      const size = [1, 7, 30, 3][i % 4] as number;
      now += pacer.delay(size, now);
      expect(pacer.take(size, now)).toBe(true);
      sent += size;
    }
    // The first burst is free; everything after it went at 10 ms a message.
    expect(now).toBeGreaterThanOrEqual((sent - 30 - 10) * 10);
    expect(now).toBeLessThanOrEqual(sent * 10);
    pacer.stop();
  });

  it("takes a share of the limit: half of it between two replicas, all of it again alone", () => {
    const pacer = new RatePacer({ messages: 100, perMs: 1_000 }, () => {});
    pacer.share(2, 0);
    expect(pacer.perSecond).toBe(50);
    // A burst of five (a tenth of a second at 20 ms a message), then one every 20 ms.
    expect(paced(pacer, 8)).toEqual([0, 0, 0, 0, 0, 20, 40, 60]);
    pacer.share(1, 60);
    expect(pacer.perSecond).toBe(100);
    // 100 ms owed at 20 ms a message is 50 at 10: the rest of the new burst of ten at once, then every 10 ms.
    expect(paced(pacer, 10, 60)).toEqual([...Array(5).fill(60), 70, 80, 90, 100, 110]);
  });

  it("wakes a caller refused at the old pace when its share changes, to ask again", () => {
    let woken = 0;
    const pacer = new RatePacer({ messages: 2, perMs: 1_000 }, () => woken++);
    pacer.share(2, 0);
    expect(pacer.take(1, 0)).toBe(true);
    expect(pacer.take(1, 0)).toBe(false);
    expect(pacer.delay(1, 0)).toBe(1_000);
    pacer.share(1, 0);
    expect(woken).toBe(1);
    expect(pacer.delay(1, 0)).toBe(500);
    pacer.stop();
  });

  it("wakes its caller once when what it refused may go", async () => {
    let woken = 0;
    const pacer = new RatePacer({ messages: 20, perMs: 1_000 }, () => woken++);
    // A burst of two (a tenth of a second at 50 ms a message), then one every 50 ms.
    expect(pacer.take(1)).toBe(true);
    expect(pacer.take(1)).toBe(true);
    const refusedAt = performance.now();
    expect(pacer.take(1)).toBe(false);
    expect(pacer.take(1)).toBe(false);
    await new Promise((r) => setTimeout(r, 120));
    expect(woken).toBe(1);
    expect(pacer.take(1)).toBe(true);
    expect(performance.now() - refusedAt).toBeGreaterThanOrEqual(49);
    pacer.stop();
  });
});

const { h, cleanups } = useHarness();

async function setup(fn: HttpFunction, route: Record<string, unknown>): Promise<RouteFixture> {
  cleanups.push(() => fn.close());
  const f = await routeFixture(h, fn.url, route);
  cleanups.push(() => f.consumer.stop(1_000));
  return f;
}

async function publish(f: RouteFixture, count: number): Promise<void> {
  for (let n = 0; n < count; n++) await h.js.publish(f.subject, JSON.stringify({ n }));
}

/** The `n` of every message the function received, in the order it received them (a batch's in its order). */
function received(requests: RecordedRequest[]): number[] {
  return requests.flatMap((r) => {
    const body = JSON.parse(r.body.toString()) as { n: number } | { data: { n: number } }[];
    return Array.isArray(body) ? body.map((e) => e.data.n) : [body.n];
  });
}

const range = (count: number) => Array.from({ length: count }, (_, n) => n);
/**
 * When the route sent each message (performance.now() at `invoke:start`): what the limit governs. When they
 * reach the function also depends on how quickly a busy machine gets to them.
 */
function sendTimes(f: RouteFixture): number[] {
  const at: number[] = [];
  f.events.on("invoke:start", () => at.push(performance.now()));
  return at;
}

/** Highest number of sends within any `windowMs`. */
function busiestWindow(at: number[], windowMs: number): number {
  let most = 0;
  for (let i = 0, j = 0; j < at.length; j++) {
    while ((at[j] as number) - (at[i] as number) >= windowMs) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}
const span = (at: number[]) => (at.at(-1) ?? 0) - (at[0] ?? 0);

describe("a route with rate_limit, against a real nats-server", () => {
  it("sends a backlog no faster than the limit, each message once and in order", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn, { rate_limit: "20/s" });
    const sent = sendTimes(f);
    await publish(f, 40);
    await f.consumer.start();
    await waitFor("40 acks", () => f.outcomes.length >= 40);
    expect(received(fn.requests)).toEqual(range(40));
    // A burst of two (a tenth of a second's worth), then one every 50 ms: 38 intervals.
    expect(sent).toHaveLength(40);
    expect(span(sent)).toBeGreaterThanOrEqual(38 * 50 - 2);
    expect(busiestWindow(sent, 500)).toBeLessThanOrEqual(12);
    // Not slower than the limit either: the pace holds while a timer fires late.
    expect(span(sent)).toBeLessThan(3 * 38 * 50);
  });

  it("keeps the messages it has not sent yet alive past ack_wait: none is redelivered", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn, { rate_limit: "4/s", ack_wait: "1s", concurrency: 8 });
    const sent = sendTimes(f);
    await publish(f, 8);
    await f.consumer.start();
    await waitFor("8 acks", () => f.outcomes.length >= 8);
    // The last one waited ~1.75 s in the bridge; a redelivery would have reached the function again.
    await new Promise((r) => setTimeout(r, 300));
    expect(received(fn.requests)).toEqual(range(8));
    expect(fn.requests.map((r) => r.headers["x-jetway-delivery"])).toEqual(Array(8).fill("1"));
    expect(span(sent)).toBeGreaterThanOrEqual(7 * 250 - 2);
  });

  it("paces a batch route by messages: a batch goes when its messages may", async () => {
    const fn = await HttpFunction.start(() => ({ status: 200, body: { failures: [] } }));
    const f = await setup(fn, { rate_limit: "200/s", batch: { size: 20, max_wait: "5ms" } });
    const sent = sendTimes(f);
    await publish(f, 200);
    await f.consumer.start();
    await waitFor("messages waiting for the limit", () => f.consumer.queued >= 100);
    await waitFor("200 acks", () => f.outcomes.length >= 200);
    expect(f.consumer.queued).toBe(0);
    expect(received(fn.requests).sort((a, b) => a - b)).toEqual(range(200));
    // Twenty at once (the burst is a tenth of a second: 20), then 100 ms owed per batch of 20.
    expect(fn.requests.length).toBe(10);
    expect(span(sent)).toBeGreaterThanOrEqual(9 * 100 - 2);
    expect(span(sent)).toBeLessThan(3 * 9 * 100);
  });

  it("releases what a pause held at the limit's pace, not all at once", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn, { rate_limit: "20/s" });
    const sent = sendTimes(f);
    await f.consumer.start();
    f.consumer.pause("maintenance");
    await publish(f, 20);
    await waitFor("20 held", () => f.consumer.heldCount === 20);
    expect(fn.requests).toEqual([]);
    f.consumer.resume();
    await waitFor("20 acks", () => f.outcomes.length >= 20);
    expect(received(fn.requests)).toEqual(range(20));
    expect(span(sent)).toBeGreaterThanOrEqual(18 * 50 - 2);
  });

  it("counts what waits for the limit in jetway_route_waiting, back to 0 once sent", async () => {
    const fn = await HttpFunction.start();
    cleanups.push(() => fn.close());
    const { config, subject } = oneRouteBridgeConfig(h.server.url, fn.url, { rate_limit: "10/s" });
    const bridge = await startBridge(config, { logger: createLogger({ level: "silent" }) });
    cleanups.push(() => bridge.shutdown());
    for (let n = 0; n < 20; n++) await h.js.publish(subject, JSON.stringify({ n }));
    const waiting = () => pacedGauge(bridge.port, "jetway_route_waiting");
    await waitFor("messages waiting for the limit", async () => (await waiting()) >= 10);
    expect(fn.requests.length).toBeLessThan(20);
    await waitFor("all 20 sent", () => fn.requests.length === 20, 5_000);
    expect(await waiting()).toBe(0);
  });
});
