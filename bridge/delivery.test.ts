import { headers } from "@nats-io/nats-core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { provisionConsumer } from "./provision.ts";
import { publishEvents } from "./publisher.ts";
import { HttpFunction, waitFor } from "./testing/http-function.ts";
import { type RouteFixture, routeFixture, useHarness } from "./testing/route-fixture.ts";

const { h, cleanups } = useHarness();

async function setup(
  fn: HttpFunction,
  route: Record<string, unknown> = {},
  start = true,
): Promise<RouteFixture> {
  cleanups.push(() => fn.close());
  const f = await routeFixture(h, fn.url, { backoff: ["20ms"], ...route });
  cleanups.push(() => f.consumer.stop(1_000));
  if (start) await f.consumer.start();
  return f;
}

const settled = (f: RouteFixture, n = 1) => waitFor(`${n} outcome(s)`, () => f.outcomes.length >= n);
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("events a function returns", () => {
  it("are stored (with derived or own ids and the trace context) before the input is acked", async () => {
    let f: RouteFixture | undefined;
    const fn = await HttpFunction.start(() => ({
      status: 200,
      body: {
        events: [
          { subject: `${f?.outPrefix}.created`, data: { n: 1 } },
          {
            subject: `${f?.outPrefix}.audited`,
            data: { n: 2 },
            id: "audit-7",
            headers: { "X-Kind": "audit" },
          },
        ],
      },
    }));
    f = await setup(fn);
    const fixture = f;
    const storedAtAck: number[] = [];
    f.events.on("invoke:outcome", () => {
      void h.jsm.streams.info(fixture.outStream).then((i) => storedAtAck.push(i.state.messages));
    });
    const hdrs = headers();
    hdrs.set("Nats-Msg-Id", "in-1");
    hdrs.set("traceparent", TRACEPARENT);
    await h.js.publish(f.subject, "{}", { headers: hdrs });
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "ack", emitted: 2 });
    const out = await f.stored(f.outStream);
    expect(out.map((m) => m.header.get("Nats-Msg-Id"))).toEqual(["in-1:0", "audit-7"]);
    expect(out.map((m) => m.json())).toEqual([{ n: 1 }, { n: 2 }]);
    expect(out.every((m) => m.header.get("traceparent") === TRACEPARENT)).toBe(true);
    expect(out[1]?.header.get("X-Kind")).toBe("audit");
    await waitFor("stream count at ack time", () => storedAtAck.length === 1);
    expect(storedAtAck).toEqual([2]);
  });

  it("are deduplicated when the same input is published twice (a redelivered input)", async () => {
    const f = await routeFixture(h, "http://127.0.0.1:9/unused");
    const events = [
      { subject: `${f.outPrefix}.a`, data: 1 },
      { subject: `${f.outPrefix}.b`, data: 2 },
    ];
    const first = await publishEvents(h.js, { id: "IN:5" }, events);
    const second = await publishEvents(h.js, { id: "IN:5" }, events);
    expect(first.map((a) => a.duplicate)).toEqual([false, false]);
    expect(second.map((a) => a.duplicate)).toEqual([true, true]);
    expect((await f.stored(f.outStream)).length).toBe(2);
  });

  it("survive a failed publish: the input is retried, not acked, and the redelivery publishes no duplicates", async () => {
    let f: RouteFixture | undefined;
    const limited = `LIM_${Math.random().toString(36).slice(2, 8)}`;
    const fn = await HttpFunction.start(() => ({
      status: 200,
      body: {
        events: [
          { subject: `${f?.outPrefix}.a`, data: "a" },
          { subject: `${limited}.b`, data: "b" },
        ],
      },
    }));
    f = await setup(fn, { backoff: ["500ms"] }, false);
    // A full stream (max_msgs 1, discard new) rejects the second event on the first attempt.
    await h.jsm.streams.add({ name: limited, subjects: [`${limited}.>`], max_msgs: 1, discard: "new" });
    await h.js.publish(`${limited}.filler`, "x");
    const fixture = f;
    f.events.on("invoke:outcome", (e) => {
      if (e.outcome === "retry") void h.jsm.streams.purge(limited);
    });
    await f.consumer.start();
    const pub = await h.js.publish(f.subject, "{}");
    await settled(f, 2);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["retry", "ack"]);
    expect(f.outcomes[0]?.reason).toMatch(/publishing event to "LIM_\w+\.b" failed/);
    expect(fn.requests.map((r) => r.headers["x-jetway-delivery"])).toEqual(["1", "2"]);
    const out = await fixture.stored(fixture.outStream);
    expect(out.map((m) => m.header.get("Nats-Msg-Id"))).toEqual([`${f.route.stream}:${pub.seq}:0`]);
    const lim = await fixture.stored(limited);
    expect(lim.map((m) => m.header.get("Nats-Msg-Id"))).toEqual([`${f.route.stream}:${pub.seq}:1`]);
  });

  it("dead-letters the input when an event's subject binds no stream", async () => {
    const fn = await HttpFunction.start(() => ({
      status: 200,
      body: { events: [{ subject: "nowhere.at.all", data: 1 }] },
    }));
    const f = await setup(fn);
    await h.js.publish(f.subject, "{}");
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "dead_letter" });
    expect(f.outcomes[0]?.reason).toMatch(/"nowhere.at.all" failed: no stream binds the subject/);
    expect((await f.dlq()).length).toBe(1);
  });

  it("dead-letters the input at once when an event is too large for its stream (a retry cannot help)", async () => {
    const small = `SMALL_${Math.random().toString(36).slice(2, 8)}`;
    await h.jsm.streams.add({ name: small, subjects: [`${small}.>`], max_msg_size: 64 });
    cleanups.push(async () => void (await h.jsm.streams.delete(small)));
    const fn = await HttpFunction.start(() => ({
      status: 200,
      body: { events: [{ subject: `${small}.big`, data: "x".repeat(100) }] },
    }));
    const f = await setup(fn, { max_deliver: 5 });
    await h.js.publish(f.subject, "{}");
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "dead_letter" });
    expect(f.outcomes[0]?.reason).toMatch(
      new RegExp(`"${small}.big" failed: the event is too large to store`),
    );
    expect(fn.requests).toHaveLength(1);
    const [letter] = await f.dlq();
    expect(letter?.header.get("Jetway-Dlq-Reason")).toMatch(/too large to store/);
  });
});

describe("in-flight management", () => {
  it("keeps a request running past ack_wait alive with working(), so it is not redelivered", async () => {
    const fn = await HttpFunction.start(() => ({ status: 200, delayMs: 2_500 }));
    const f = await setup(fn, { ack_wait: "1s", timeout: "10s" });
    await h.js.publish(f.subject, "{}");
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "ack" });
    expect(fn.requests).toHaveLength(1);
    const info = await h.jsm.consumers.info(f.route.stream, f.route.name);
    expect(info.num_redelivered).toBe(0);
  });

  it("never has more than `concurrency` requests in flight and processes the queue", async () => {
    const fn = await HttpFunction.start(() => ({ status: 200, delayMs: 15 }));
    const f = await setup(fn, { concurrency: 3 });
    await Promise.all(Array.from({ length: 40 }, (_, i) => h.js.publish(f.subject, `{"i":${i}}`)));
    await settled(f, 40);
    expect(fn.maxConcurrent).toBe(3);
    expect(new Set(fn.requests.map((r) => r.headers["ce-id"])).size).toBe(40);
  });

  it("stop() lets in-flight work finish within the grace period", async () => {
    const fn = await HttpFunction.start(() => ({ status: 200, delayMs: 300 }));
    const f = await setup(fn);
    await h.js.publish(f.subject, "{}");
    await waitFor("request", () => fn.requests.length === 1);
    expect(f.consumer.inFlight).toBe(1);
    await f.consumer.stop(5_000);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["ack"]);
    expect(f.consumer.inFlight).toBe(0);
    expect(f.consumer.bound).toBe(false);
  });

  it("stop() hands back what is still running after the grace period; another consumer takes it", async () => {
    const fn = await HttpFunction.start((_req, n) => ({ status: 200, delayMs: n < 2 ? 5_000 : 0 }));
    const f = await setup(fn, { concurrency: 2 });
    for (let i = 0; i < 4; i++) await h.js.publish(f.subject, `{"i":${i}}`);
    await waitFor("two slow requests", () => fn.requests.length === 2);
    // All four in hand before stopping: a message still on its way from the server when the pull closes is
    // dropped by the client and only comes back after ack_wait (30 s here), which is not what this tests.
    await waitFor("two more waiting for a slot", () => f.consumer.queued === 2);
    await f.consumer.stop(100);
    expect(f.outcomes).toHaveLength(0);
    const next = f.newConsumer();
    cleanups.push(() => next.stop(1_000));
    await next.start();
    await settled(f, 4);
    expect(f.outcomes.every((o) => o.outcome === "ack")).toBe(true);
    const firstTwo = fn.requests.slice(0, 2).map((r) => r.headers["ce-id"]);
    const redelivered = fn.requests.slice(2).filter((r) => firstTwo.includes(r.headers["ce-id"]));
    expect(redelivered.map((r) => r.headers["x-jetway-delivery"])).toEqual(["2", "2"]);
  });
});

describe("consumer notifications", () => {
  it("reports a deleted durable as consumer:status without throwing", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn);
    const statuses: string[] = [];
    f.events.on("consumer:status", (s) => statuses.push(s.type));
    await h.jsm.consumers.delete(f.route.stream, f.route.name);
    // consumer_deleted when the delete meets the pull waiting on the server, as it almost always does; a
    // busy machine can delay that pull past the delete (the next test), and then it is consumer_not_found.
    const gone = () => statuses.includes("consumer_deleted") || statuses.includes("consumer_not_found");
    await waitFor("a consumer_deleted notification", gone, 20_000);
    expect(f.consumer.inFlight).toBe(0);
    expect(f.consumer.bound).toBe(false);
  });

  it("a durable gone before its first pull: reported, unbound, and bound again once recreated", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn, {}, false);
    const statuses: string[] = [];
    f.events.on("consumer:status", (s) => statuses.push(s.type));
    // The durable goes between start()'s first lookup and its first pull, which then finds nothing to wait
    // on and is never told `consumer_deleted` (in the suite, a busy machine made that window real).
    let lookups = 0;
    const deletingAfterLookup = new Proxy(h.js, {
      get(target, prop) {
        if (prop !== "consumers") return Reflect.get(target, prop);
        const consumers = target.consumers;
        return {
          get: async (stream: string, name: string) => {
            const found = await consumers.get(stream, name);
            if (++lookups === 1) await h.jsm.consumers.delete(stream, name);
            return found;
          },
        };
      },
    });
    const consumer = f.newConsumer({}, deletingAfterLookup);
    cleanups.push(() => consumer.stop(1_000));
    await consumer.start();
    await waitFor("a consumer_not_found notification", () => statuses.includes("consumer_not_found"), 20_000);
    expect(statuses).not.toContain("consumer_deleted");
    await waitFor("the consumer to report unbound", () => !consumer.bound);
    await provisionConsumer(h.jsm, f.route, h.nc.info?.version ?? "2.9.0", pino({ level: "silent" }));
    await waitFor("the consumer to rebind", () => consumer.bound);
    await h.js.publish(f.subject, "{}");
    await settled(f, 1);
    expect(f.outcomes[0]?.outcome).toBe("ack");
  }, 40_000);

  it("rebinds to a recreated durable and delivers again, without waiting for the pull to expire", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn);
    await h.jsm.consumers.delete(f.route.stream, f.route.name);
    await provisionConsumer(h.jsm, f.route, h.nc.info?.version ?? "2.9.0", pino({ level: "silent" }));
    await waitFor("the consumer to rebind", () => f.consumer.bound);
    await h.js.publish(f.subject, "{}");
    await settled(f, 1);
    expect(f.outcomes[0]?.outcome).toBe("ack");
  });
});
