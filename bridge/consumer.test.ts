import { headers } from "@nats-io/nats-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { verifySignature } from "../functions/sdk/contract.ts";
import { DLQ_HEADERS } from "./dead-letter-headers.ts";
import { freePort } from "./nats-server.ts";
import { HttpFunction, waitFor } from "./testing/http-function.ts";
import { type Harness, type RouteFixture, routeFixture, startHarness } from "./testing/route-fixture.ts";

let h: Harness;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(fn: HttpFunction | string, route: Record<string, unknown> = {}): Promise<RouteFixture> {
  const url = typeof fn === "string" ? fn : fn.url;
  if (typeof fn !== "string") cleanups.push(() => fn.close());
  const f = await routeFixture(h, url, { backoff: ["20ms"], ...route });
  cleanups.push(() => f.consumer.stop(1_000));
  await f.consumer.start();
  return f;
}

const settled = (f: RouteFixture, n = 1) => waitFor(`${n} outcome(s)`, () => f.outcomes.length >= n);

async function consumerIdle(f: RouteFixture): Promise<void> {
  await waitFor("consumer to have nothing pending or unacked", async () => {
    const info = await h.jsm.consumers.info(f.route.stream, f.route.name);
    return info.num_ack_pending === 0 && info.num_pending === 0;
  });
}

describe("RouteConsumer: invocation contract", () => {
  it("POSTs the message with CloudEvents and jetway headers, then acks on 2xx", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn);
    const hdrs = headers();
    hdrs.set("Nats-Msg-Id", "order-1");
    hdrs.set("Content-Type", "application/cloudevents+json");
    hdrs.set("X-Tenant", "acme");
    hdrs.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    const pub = await h.js.publish(f.subject, JSON.stringify({ id: 1 }), { headers: hdrs });
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "ack", status: 200 });
    expect(f.consumer.bound).toBe(true);
    const stored = await h.jsm.streams.getMessage(f.route.stream, { seq: pub.seq });
    const req = fn.requests[0];
    expect(req?.body.toString()).toBe('{"id":1}');
    expect(req?.headers).toMatchObject({
      "content-type": "application/cloudevents+json",
      "ce-specversion": "1.0",
      "ce-id": "order-1",
      "ce-source": `jetway://${f.route.stream}`,
      "ce-type": f.subject,
      "ce-time": stored?.time.toISOString(),
      "x-jetway-route": f.route.name,
      "x-jetway-stream": f.route.stream,
      "x-jetway-seq": String(pub.seq),
      "x-jetway-delivery": "1",
      "x-jetway-max-deliver": "5",
      "x-tenant": "acme",
      "nats-msg-id": "order-1",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });
    expect(req?.headers["x-jetway-signature"]).toBeUndefined();
    await consumerIdle(f);
  });

  it("defaults content-type to application/json and ce-id to <stream>:<seq>", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn);
    const pub = await h.js.publish(f.subject, "{}");
    await settled(f);
    expect(fn.requests[0]?.headers["content-type"]).toBe("application/json");
    expect(fn.requests[0]?.headers["ce-id"]).toBe(`${f.route.stream}:${pub.seq}`);
  });

  it("signs the body so that contract.ts verifySignature accepts it", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn, { secret: "s3cret" });
    await h.js.publish(f.subject, '{"amount":42}');
    await settled(f);
    const req = fn.requests[0];
    const signature = req?.headers["x-jetway-signature"] as string;
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    await expect(verifySignature("s3cret", req?.body ?? "", signature)).resolves.toBeUndefined();
    await expect(verifySignature("s3cret", '{"amount":43}', signature)).rejects.toThrow(/does not match/);
    await expect(verifySignature("other", req?.body ?? "", signature)).rejects.toThrow(/does not match/);
  });
});
