import { headers } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { BATCH_CONTENT_TYPE, verifySignature } from "../functions/sdk/contract.ts";
import { defineFunction } from "../functions/sdk/define-function.ts";
import { capturingLogger } from "../functions/sdk/fixtures.test-helpers.ts";
import { serveNode } from "../functions/sdk/node.ts";
import { defineEvent } from "../schemas/define.ts";
import { DLQ_HEADERS } from "./dead-letter-headers.ts";
import type { BatchDelivered } from "./events.ts";
import { HttpFunction, type RecordedRequest, waitFor } from "./testing/http-function.ts";
import { type RouteFixture, routeFixture, useHarness } from "./testing/route-fixture.ts";

const { h, cleanups } = useHarness();

async function setup(url: string, route: Record<string, unknown>): Promise<RouteFixture> {
  const f = await routeFixture(h, url, { backoff: ["20ms"], ...route });
  cleanups.push(() => f.consumer.stop(1_000));
  await f.consumer.start();
  return f;
}

async function scripted(...args: Parameters<typeof HttpFunction.start>): Promise<HttpFunction> {
  const fn = await HttpFunction.start(...args);
  cleanups.push(() => fn.close());
  return fn;
}

const settled = (f: RouteFixture, n: number) => waitFor(`${n} outcome(s)`, () => f.outcomes.length >= n);
/** The structured CloudEvents of one recorded batch request. */
const eventsOf = (req: RecordedRequest | undefined): Record<string, unknown>[] =>
  JSON.parse(req?.body.toString() ?? "[]");
const withId = (id: string) => {
  const hdrs = headers();
  hdrs.set("Nats-Msg-Id", id);
  return { headers: hdrs };
};
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async function consumerIdle(f: RouteFixture): Promise<void> {
  await waitFor("consumer to have nothing pending or unacked", async () => {
    const info = await h.jsm.consumers.info(f.route.stream, f.route.name);
    return info.num_ack_pending === 0 && info.num_pending === 0;
  });
}

describe("batch delivery", () => {
  it("delivers 250 messages to an SDK batch handler in signed batches of at most 50, each id once", async () => {
    const calls: string[][] = [];
    const sizes: number[] = [];
    const { log } = capturingLogger("silent");
    const fn = defineFunction({ name: "batch-test", logger: log, secret: () => "s3cret" });
    const served = serveNode(fn.app, { port: 0, hostname: "127.0.0.1", logger: log });
    cleanups.push(() => served.close());
    const { port } = await served.ready;
    const f = await setup(`http://127.0.0.1:${port}/events`, { batch: { size: 50 }, secret: "s3cret" });
    // Subjects are per test, so the event type follows the route's (handlers may be added while serving).
    const Item = defineEvent(`${f.subject.split(".")[0]}.item.v1`, z.object({ n: z.number().int() }));
    fn.handleBatch(Item, (events) => {
      calls.push(events.map((e) => e.id));
    });
    f.events.on("batch:delivered", (b: BatchDelivered) => sizes.push(b.size));
    await Promise.all(
      Array.from({ length: 250 }, (_, n) => h.js.publish(Item.subject, JSON.stringify({ n }))),
    );
    await settled(f, 250);
    expect(f.outcomes.every((o) => o.outcome === "ack" && o.status === 200)).toBe(true);
    const ids = calls.flat();
    expect(ids).toHaveLength(250);
    expect(new Set(ids).size).toBe(250);
    expect(calls.every((c) => c.length >= 1 && c.length <= 50)).toBe(true);
    expect(calls.some((c) => c.length > 1)).toBe(true);
    expect(sizes.sort((a, b) => a - b)).toEqual(calls.map((c) => c.length).sort((a, b) => a - b));
    await consumerIdle(f);
  });

  it("sends what arrived within max_wait as one batch of structured CloudEvents", async () => {
    const fn = await scripted(() => ({ status: 200, body: { failures: [] } }));
    const f = await setup(fn.url, { batch: { size: 100, max_wait: "200ms" } });
    const traced = withId("order-1");
    traced.headers.set("traceparent", TRACEPARENT);
    const text = headers();
    text.set("Content-Type", "text/plain");
    const [first, second, third] = await Promise.all([
      h.js.publish(f.subject, '{"id":1}', traced),
      h.js.publish(f.subject, "[2]"),
      h.js.publish(f.subject, "hello", { headers: text }),
    ]);
    await settled(f, 3);
    expect(fn.requests).toHaveLength(1);
    const req = fn.requests[0];
    expect(req?.headers).toMatchObject({
      "content-type": BATCH_CONTENT_TYPE,
      "x-jetway-route": f.route.name,
    });
    const body = eventsOf(req).sort((a, b) => Number(a.jetwayseq) - Number(b.jetwayseq));
    const stored = await h.jsm.streams.getMessage(f.route.stream, { seq: first?.seq ?? 0 });
    const common = {
      specversion: "1.0",
      source: `jetway://${f.route.stream}`,
      type: f.subject,
      jetwayroute: f.route.name,
      jetwaystream: f.route.stream,
      jetwaydelivery: 1,
      jetwaymaxdeliver: 5,
    };
    expect(body).toEqual([
      {
        ...common,
        id: "order-1",
        time: stored?.time.toISOString(),
        datacontenttype: "application/json",
        data: { id: 1 },
        jetwayseq: first?.seq,
        traceparent: TRACEPARENT,
      },
      {
        ...common,
        id: `${f.route.stream}:${second?.seq}`,
        time: expect.any(String),
        datacontenttype: "application/json",
        data: [2],
        jetwayseq: second?.seq,
      },
      {
        ...common,
        id: `${f.route.stream}:${third?.seq}`,
        time: expect.any(String),
        datacontenttype: "text/plain",
        data_base64: Buffer.from("hello").toString("base64"),
        jetwayseq: third?.seq,
      },
    ]);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["ack", "ack", "ack"]);
  });

  it("passes a JSON payload through byte for byte, and one that only claims to be JSON as base64", async () => {
    const fn = await scripted(() => ({ status: 200, body: { failures: [] } }));
    const f = await setup(fn.url, { batch: { size: 100, max_wait: "200ms" } });
    // Beyond 2^53: parsing and stringifying again would round it.
    const exact = '{ "n": 12345678901234567890, "s": "\u2028" }';
    await Promise.all([h.js.publish(f.subject, exact), h.js.publish(f.subject, "{not json")]);
    await settled(f, 2);
    const raw = fn.requests[0]?.body.toString() ?? "";
    expect(raw).toContain(`"data":${exact}`);
    const [, broken] = eventsOf(fn.requests[0]).sort((a, b) => Number(a.jetwayseq) - Number(b.jetwayseq));
    expect(broken).toMatchObject({
      datacontenttype: "application/json",
      data_base64: Buffer.from("{not json").toString("base64"),
    });
  });

  it("signs the whole body so that the SDK's verifySignature accepts it", async () => {
    const fn = await scripted(() => ({ status: 200, body: { failures: [] } }));
    const f = await setup(fn.url, { batch: { size: 2, max_wait: "1s" }, secret: "s3cret" });
    await Promise.all([h.js.publish(f.subject, '{"a":1}'), h.js.publish(f.subject, '{"a":2}')]);
    await settled(f, 2);
    const req = fn.requests[0];
    expect(eventsOf(req)).toHaveLength(2);
    const signature = req?.headers["x-jetway-signature"] as string;
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64},b1=[0-9a-f]{64}$/);
    await expect(verifySignature("s3cret", req?.body ?? "", signature)).resolves.toBeUndefined();
    const identity = { id: "a", type: f.subject };
    await expect(verifySignature("s3cret", req?.body ?? "", signature, { identity })).rejects.toThrow(
      /no v2/,
    );
    await expect(verifySignature("other", req?.body ?? "", signature)).rejects.toThrow(/does not match/);
  });
  it("never puts one id in a batch twice: the batch ends before a repeated Nats-Msg-Id", async () => {
    const fn = await scripted(() => ({ status: 200, body: { failures: [] } }));
    const f = await routeFixture(h, fn.url, { batch: { size: 10, max_wait: "300ms" } });
    cleanups.push(() => f.consumer.stop(1_000));
    // A short duplicate window lets the stream store the same Nats-Msg-Id twice.
    const info = await h.jsm.streams.info(f.route.stream);
    await h.jsm.streams.update(f.route.stream, { ...info.config, duplicate_window: 100_000_000 });
    await h.js.publish(f.subject, '{"n":1}', withId("dup"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await h.js.publish(f.subject, '{"n":2}', withId("dup"));
    await h.js.publish(f.subject, '{"n":3}', withId("other"));
    await f.consumer.start();
    await settled(f, 3);
    expect(f.outcomes.every((o) => o.outcome === "ack")).toBe(true);
    expect(fn.requests.map((r) => eventsOf(r).map((e) => e.data))).toEqual([
      [{ n: 1 }],
      [{ n: 2 }, { n: 3 }],
    ]);
  });
});

describe("batch delivery: per-message outcomes", () => {
  it("dead-letters, retries and acks per message; events stored before the ack, once", async () => {
    let f: RouteFixture | undefined;
    const out = (name: string) => `${f?.outPrefix}.${name}`;
    const fn = await scripted((_req, n) =>
      n === 0
        ? {
            status: 200,
            body: {
              failures: [
                { id: "m2", reason: "unknown sku", dead_letter: true },
                { id: "m3", reason: "stock locked", retry_after: 0.05 },
              ],
              // m3 failed: its events must be dropped this time.
              events: { m1: [{ subject: out("m1"), data: 1 }], m3: [{ subject: out("m3"), data: 3 }] },
            },
          }
        : { status: 200, body: { failures: [], events: { m3: [{ subject: out("m3"), data: 3 }] } } },
    );
    f = await setup(fn.url, { batch: { size: 4, max_wait: "1s" } });
    const fixture = f;
    const storedAtAck = new Map<string, Promise<number>>();
    f.events.on("invoke:outcome", (e) => {
      if (e.outcome !== "ack") return;
      const subject = out(e.delivery.id);
      const found = h.jsm.streams.getMessage(fixture.outStream, { last_by_subj: subject }).then(
        (m) => (m ? 1 : 0),
        () => 0,
      );
      storedAtAck.set(e.delivery.id, found);
    });
    await Promise.all(["m1", "m2", "m3", "m4"].map((id) => h.js.publish(fixture.subject, "{}", withId(id))));
    await settled(f, 5);
    const byId = (id: string) => f?.outcomes.filter((o) => o.delivery.id === id).map((o) => o.outcome);
    expect(byId("m1")).toEqual(["ack"]);
    expect(byId("m2")).toEqual(["dead_letter"]);
    expect(byId("m3")).toEqual(["retry", "ack"]);
    expect(byId("m4")).toEqual(["ack"]);
    expect(f.outcomes.find((o) => o.delivery.id === "m3")).toMatchObject({
      delayMs: 50,
      reason: "stock locked",
    });
    expect(fn.requests).toHaveLength(2);
    expect(eventsOf(fn.requests[0]).map((e) => e.id)).toEqual(["m1", "m2", "m3", "m4"]);
    expect(eventsOf(fn.requests[1])).toMatchObject([{ id: "m3", jetwaydelivery: 2 }]);
    const dlq = await f.dlq();
    expect(dlq).toHaveLength(1);
    expect(dlq[0]?.header.get(DLQ_HEADERS.msgId)).toBe("m2");
    expect(dlq[0]?.header.get(DLQ_HEADERS.reason)).toBe("unknown sku");
    const stored = await f.stored(f.outStream);
    expect(stored.map((m) => m.header.get("Nats-Msg-Id"))).toEqual(["m1:0", "m3:0"]);
    expect(await storedAtAck.get("m1")).toBe(1);
    expect(await storedAtAck.get("m3")).toBe(1);
    await consumerIdle(f);
  });

  it("retries a message whose events could not all be stored; its redelivery stores no duplicates", async () => {
    let f: RouteFixture | undefined;
    const limited = `LIM_${Math.random().toString(36).slice(2, 8)}`;
    const answer = (req: RecordedRequest) => {
      const events: Record<string, unknown> = {};
      for (const e of eventsOf(req)) {
        const id = String(e.id);
        events[id] = [
          { subject: `${f?.outPrefix}.${id}`, data: id },
          ...(id === "m2" ? [{ subject: `${limited}.b`, data: id }] : []),
        ];
      }
      return { status: 200, body: { failures: [], events } };
    };
    const fn = await scripted(answer);
    f = await setup(fn.url, { batch: { size: 2, max_wait: "100ms" }, backoff: ["300ms"] });
    // A full stream (max_msgs 1, discard new) rejects m2's second event on the first attempt.
    await h.jsm.streams.add({ name: limited, subjects: [`${limited}.>`], max_msgs: 1, discard: "new" });
    await h.js.publish(`${limited}.filler`, "x");
    f.events.on("invoke:outcome", (e) => {
      if (e.outcome === "retry") void h.jsm.streams.purge(limited);
    });
    await Promise.all(["m1", "m2"].map((id) => h.js.publish(f.subject, "{}", withId(id))));
    await settled(f, 3);
    const byId = (id: string) => f?.outcomes.filter((o) => o.delivery.id === id).map((o) => o.outcome);
    expect(byId("m1")).toEqual(["ack"]);
    expect(byId("m2")).toEqual(["retry", "ack"]);
    expect(f.outcomes.find((o) => o.outcome === "retry")?.reason).toMatch(/publishing event to "LIM_\w+\.b"/);
    expect(eventsOf(fn.requests[1])).toMatchObject([{ id: "m2", jetwaydelivery: 2 }]);
    const out = await f.stored(f.outStream);
    expect(out.map((m) => m.header.get("Nats-Msg-Id")).sort()).toEqual(["m1:0", "m2:0"]);
    const lim = await f.stored(limited);
    expect(lim.map((m) => m.header.get("Nats-Msg-Id"))).toEqual(["m2:1"]);
  });

  it("applies a 500 to every message: retried, then dead-lettered on the last attempt", async () => {
    const fn = await scripted(() => ({
      status: 500,
      body: { error: { code: "internal", message: "db down" } },
    }));
    // With the breaker, three messages failing together on their last attempt are an outage: held.
    const route = { batch: { size: 3, max_wait: "1s" }, max_deliver: 2, circuit_breaker: false };
    const f = await setup(fn.url, route);
    await Promise.all([1, 2, 3].map((i) => h.js.publish(f.subject, `{"i":${i}}`)));
    await settled(f, 6);
    expect(f.outcomes.slice(0, 3).map((o) => o.outcome)).toEqual(["retry", "retry", "retry"]);
    expect(f.outcomes.slice(3).map((o) => o.outcome)).toEqual(["dead_letter", "dead_letter", "dead_letter"]);
    expect(eventsOf(fn.requests[0]).map((e) => e.jetwaydelivery)).toEqual([1, 1, 1]);
    const redelivered = fn.requests.slice(1).flatMap((r) => eventsOf(r).map((e) => e.jetwaydelivery));
    expect(redelivered).toEqual([2, 2, 2]);
    const dlq = await f.dlq();
    expect(dlq).toHaveLength(3);
    for (const letter of dlq) {
      expect(letter.header.get(DLQ_HEADERS.reason)).toBe("attempt 2 of 2 failed: HTTP 500: db down");
      expect(letter.header.get(DLQ_HEADERS.status)).toBe("500");
    }
    await consumerIdle(f);
  });

  it("retries the whole batch on a 200 that is not the batch format", async () => {
    const fn = await scripted((_req, n) => ({
      status: 200,
      body: n === 0 ? { ok: true } : { failures: [] },
    }));
    const f = await setup(fn.url, { batch: { size: 2, max_wait: "1s" } });
    await Promise.all([h.js.publish(f.subject, "{}"), h.js.publish(f.subject, "{}")]);
    await settled(f, 4);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["retry", "retry", "ack", "ack"]);
    expect(f.outcomes[0]?.reason).toBe("malformed batch response (HTTP 200): failures must be an array");
  });
});

describe("batch delivery: in flight", () => {
  it("sends a partial batch left behind by busy slots within max_wait, without waiting for more", async () => {
    const fn = await scripted(() => ({ status: 200, body: { failures: [] }, delayMs: 200 }));
    const f = await setup(fn.url, { batch: { size: 2, max_wait: "50ms" }, concurrency: 1 });
    for (let i = 1; i <= 5; i++) await h.js.publish(f.subject, `{"i":${i}}`);
    await settled(f, 5);
    expect(f.outcomes.every((o) => o.outcome === "ack")).toBe(true);
    const sizes = fn.requests.map((r) => eventsOf(r).length);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(5);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2);
    expect(fn.maxConcurrent).toBe(1);
  });

  it("keeps every message of a slow batch alive with working(), so none is redelivered", async () => {
    const fn = await scripted(() => ({ status: 200, body: { failures: [] }, delayMs: 2_500 }));
    const f = await setup(fn.url, { batch: { size: 3, max_wait: "1s" }, ack_wait: "1s", timeout: "10s" });
    await Promise.all([1, 2, 3].map((i) => h.js.publish(f.subject, `{"i":${i}}`)));
    await settled(f, 3);
    expect(f.outcomes.every((o) => o.outcome === "ack")).toBe(true);
    expect(fn.requests).toHaveLength(1);
    const info = await h.jsm.consumers.info(f.route.stream, f.route.name);
    expect(info.num_redelivered).toBe(0);
  });

  it("stop() lets a batch in flight finish and hands back the one still waiting", async () => {
    const fn = await scripted(() => ({ status: 200, body: { failures: [] }, delayMs: 300 }));
    const f = await setup(fn.url, { batch: { size: 2, max_wait: "10s" }, concurrency: 1 });
    await Promise.all([1, 2, 3].map((i) => h.js.publish(f.subject, `{"i":${i}}`)));
    await waitFor("the first batch", () => fn.requests.length === 1);
    expect(f.consumer.inFlight).toBe(2);
    await f.consumer.stop(5_000);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["ack", "ack"]);
    expect(f.consumer.inFlight).toBe(0);
    const next = f.newConsumer();
    cleanups.push(() => next.stop(1_000));
    await next.start();
    // The handed-back third message and a fourth fill the next batch.
    await h.js.publish(f.subject, '{"i":4}');
    await waitFor("the other two messages", () => f.outcomes.length === 4);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["ack", "ack", "ack", "ack"]);
    expect(fn.requests).toHaveLength(2);
    // Handed back at once: left to ack_wait (30 s) it would not be here yet. The server does not count a
    // delivery that went to the closed pull, so its delivery count may still be 1.
    expect(eventsOf(fn.requests[1]).map((e) => e.data)).toEqual([{ i: 3 }, { i: 4 }]);
  });
});
