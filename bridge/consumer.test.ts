import { Writable } from "node:stream";
import { headers } from "@nats-io/nats-core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { verifySignature } from "../functions/sdk/contract.ts";
import { RouteConsumer } from "./consumer.ts";
import { DLQ_HEADERS } from "./dead-letter-headers.ts";
import { freePort } from "./nats-server.ts";
import { serverFeatures } from "./server-features.ts";
import { HttpFunction, waitFor } from "./testing/http-function.ts";
import { type RouteFixture, routeFixture, useHarness } from "./testing/route-fixture.ts";

const { h, cleanups } = useHarness();

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

describe("RouteConsumer: log lines", () => {
  /** A consumer on the fixture's route whose info-level log lines are collected. */
  async function logged(ackLogLevel: "debug" | "info" | undefined, status: number) {
    const fn = await HttpFunction.start(() => ({ status }));
    cleanups.push(() => fn.close());
    const f = await routeFixture(h, fn.url, { backoff: ["5s"], max_deliver: 2 });
    const lines: { msg: string; seq?: number; outcome?: string }[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line));
        done();
      },
    });
    const consumer = new RouteConsumer({
      js: h.js,
      store: h.store,
      route: f.route,
      deadLetter: f.config.dead_letter,
      events: f.events,
      logger: pino({ level: "info" }, sink),
      features: serverFeatures(h.nc.info?.version ?? "2.9.0"),
      ...(ackLogLevel ? { ackLogLevel } : {}),
    });
    cleanups.push(() => consumer.stop(1_000));
    await consumer.start();
    const pub = await h.js.publish(f.subject, "{}");
    await settled(f);
    return { lines: lines.filter((l) => l.seq === pub.seq), outcome: f.outcomes[0]?.outcome };
  }

  it("writes no info line for an ack by default, one with log.acks info", async () => {
    const quiet = await logged(undefined, 200);
    expect(quiet.outcome).toBe("ack");
    expect(quiet.lines).toEqual([]);
    const loud = await logged("info", 200);
    expect(loud.lines).toMatchObject([{ msg: "message acked", outcome: "ack" }]);
  });

  it("always logs a retry, whatever log.acks says", async () => {
    const { lines, outcome } = await logged(undefined, 503);
    expect(outcome).toBe("retry");
    expect(lines).toMatchObject([{ msg: "message will be retried", outcome: "retry" }]);
  });
});

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

  it("signs body, id and type so that contract.ts verifySignature accepts it, and no other id or type", async () => {
    const fn = await HttpFunction.start();
    const f = await setup(fn, { secret: "s3cret" });
    await h.js.publish(f.subject, '{"amount":42}', { msgID: "pay-42" });
    await settled(f);
    const req = fn.requests[0];
    const signature = req?.headers["x-jetway-signature"] as string;
    expect(signature).toMatch(/^t=\d+,v2=[0-9a-f]{64}$/);
    const body = req?.body ?? "";
    const identity = { id: "pay-42", type: f.subject };
    expect(req?.headers["ce-id"]).toBe(identity.id);
    await expect(verifySignature("s3cret", body, signature, { identity })).resolves.toBeUndefined();
    // Nor does it pass for a batch's, whose body names the events' ids and types: the producer chose this one.
    await expect(verifySignature("s3cret", body, signature)).rejects.toThrow(/no b1/);
    for (const [secret, text, id, type] of [
      ["s3cret", '{"amount":43}', identity.id, identity.type],
      ["s3cret", body, "pay-43", identity.type],
      ["s3cret", body, identity.id, `${f.subject}.v2`],
      ["other", body, identity.id, identity.type],
    ] as const) {
      await expect(verifySignature(secret, text, signature, { identity: { id, type } })).rejects.toThrow(
        /does not match/,
      );
    }
  });
});

describe("RouteConsumer: outcomes end to end", () => {
  it("500 then 200: retried after the backoff delay (nak delay honoured), then acked", async () => {
    const fn = await HttpFunction.start((_req, n) => ({ status: n === 0 ? 500 : 200 }));
    const f = await setup(fn, { backoff: ["400ms"] });
    await h.js.publish(f.subject, "{}");
    await settled(f, 2);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["retry", "ack"]);
    expect(f.outcomes[0]).toMatchObject({ status: 500, reason: "HTTP 500" });
    const [first, second] = fn.requests;
    expect(second?.headers["x-jetway-delivery"]).toBe("2");
    // ±20% jitter: never sooner than 320ms. A plain nak() would have come back at once.
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(300);
    await consumerIdle(f);
  });

  it("honours Retry-After over the configured backoff", async () => {
    const fn = await HttpFunction.start((_req, n) =>
      n === 0 ? { status: 429, headers: { "retry-after": "1" } } : { status: 204 },
    );
    const f = await setup(fn, { backoff: ["10ms"] });
    await h.js.publish(f.subject, "{}");
    await settled(f, 2);
    expect(f.outcomes[0]).toMatchObject({ outcome: "retry", delayMs: 1_000 });
    const [first, second] = fn.requests;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(900);
  });

  it("times out a slow function and retries", async () => {
    const fn = await HttpFunction.start((_req, n) => ({ status: 200, delayMs: n === 0 ? 1_500 : 0 }));
    const f = await setup(fn, { timeout: "200ms" });
    await h.js.publish(f.subject, "{}");
    await settled(f, 2);
    expect(f.outcomes[0]).toMatchObject({ outcome: "retry", status: undefined });
    expect(f.outcomes[0]?.reason).toMatch(/^timeout/);
    expect(f.outcomes[1]).toMatchObject({ outcome: "ack", status: 200 });
  });

  it("retries a reset connection", async () => {
    const fn = await HttpFunction.start((_req, n) => (n === 0 ? "reset" : { status: 200 }));
    const f = await setup(fn);
    await h.js.publish(f.subject, "{}");
    await settled(f, 2);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["retry", "ack"]);
    expect(f.outcomes[0]?.reason).toMatch(/^connection reset|^request failed/);
  });

  it("retries a refused connection, and dead-letters the last attempt with the last error", async () => {
    const f = await setup(`http://127.0.0.1:${await freePort()}/nothing`, { max_deliver: 2 });
    await h.js.publish(f.subject, '{"n":1}');
    await settled(f, 2);
    expect(f.outcomes[0]).toMatchObject({ outcome: "retry" });
    expect(f.outcomes[0]?.reason).toMatch(/^connection refused/);
    expect(f.outcomes[1]).toMatchObject({ outcome: "dead_letter" });
    expect(f.outcomes[1]?.reason).toMatch(/^attempt 2 of 2 failed: connection refused/);
    const [letter] = await f.dlq();
    expect(letter?.header.get(DLQ_HEADERS.reason)).toMatch(/attempt 2 of 2 failed: connection refused/);
    expect(letter?.header.get(DLQ_HEADERS.status)).toBe("");
    await consumerIdle(f);
  });

  it("follows the Dapr status in the body: RETRY, then SUCCESS", async () => {
    const fn = await HttpFunction.start((_req, n) => ({
      status: 200,
      body: { status: n === 0 ? "RETRY" : "SUCCESS" },
    }));
    const f = await setup(fn);
    await h.js.publish(f.subject, "{}");
    await settled(f, 2);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["retry", "ack"]);
    expect(fn.requests[1]?.headers["x-jetway-delivery"]).toBe("2");
  });

  it("reads a JSON answer that starts with a UTF-8 byte order mark", async () => {
    const json = { "content-type": "application/json" };
    const fn = await HttpFunction.start((_req, n) => ({
      status: 200,
      headers: json,
      body: `\ufeff${JSON.stringify({ status: n === 0 ? "RETRY" : "SUCCESS" })}`,
    }));
    const f = await setup(fn);
    await h.js.publish(f.subject, "{}");
    await settled(f, 2);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["retry", "ack"]);
  });

  it("acks the SDK's empty answer as it acks the same JSON written otherwise, and publishes nothing", async () => {
    // {"events":[]} exactly is recognised without parsing; any other spelling goes through JSON.parse.
    const json = { "content-type": "application/json" };
    const bodies = ['{"events":[]}', '{ "events": [] }', '{"events":[{"subject":"nowhere.x","data":{}}]}'];
    const fn = await HttpFunction.start((_req, n) => ({ status: 200, headers: json, body: bodies[n] ?? "" }));
    const f = await setup(fn);
    for (let i = 0; i < 3; i++) {
      await h.js.publish(f.subject, "{}");
      await settled(f, i + 1);
    }
    expect(f.outcomes.map((o) => [o.outcome, o.emitted])).toEqual([
      ["ack", 0],
      ["ack", 0],
      ["dead_letter", 0],
    ]);
  });

  it("applies status_outcomes overrides", async () => {
    const fn = await HttpFunction.start(() => ({ status: 404 }));
    const f = await setup(fn, { status_outcomes: { "404": "ack" } });
    await h.js.publish(f.subject, "{}");
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "ack", status: 404 });
    await consumerIdle(f);
  });

  it.each([
    ["400", { status: 400, body: `bad\r\nrequest\n${"x".repeat(3_000)}` }, "HTTP 400"],
    ["422", { status: 422, body: { error: "amount: expected number" } }, "HTTP 422: amount: expected number"],
    ["DROP", { status: 200, body: { status: "DROP" } }, "function answered status DROP (HTTP 200)"],
  ] as const)("%s → dead letter now, with its reason and every DLQ header", async (_n, reply, reason) => {
    const fn = await HttpFunction.start(() => reply);
    const f = await setup(fn);
    const hdrs = headers();
    hdrs.set("Nats-Msg-Id", "m-1");
    hdrs.set("X-Tenant", "acme");
    const pub = await h.js.publish(f.subject, '{"amount":"x"}', { headers: hdrs });
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "dead_letter", reason });
    const letters = await f.dlq();
    expect(letters).toHaveLength(1);
    const letter = letters[0];
    const get = (name: string) => letter?.header.get(name);
    expect(letter?.subject).toBe(`${f.config.dead_letter.subject_prefix}.${f.route.name}`);
    expect(letter?.string()).toBe('{"amount":"x"}');
    expect(get("X-Tenant")).toBe("acme");
    expect(get("Nats-Msg-Id")).toBe(`dlq:${f.route.name}:${f.route.stream}:${pub.seq}`);
    expect(get(DLQ_HEADERS.msgId)).toBe("m-1");
    expect(get(DLQ_HEADERS.reason)).toBe(reason);
    expect(get(DLQ_HEADERS.status)).toBe(String(reply.status));
    expect(get(DLQ_HEADERS.route)).toBe(f.route.name);
    expect(get(DLQ_HEADERS.url)).toBe(fn.url);
    expect(get(DLQ_HEADERS.subject)).toBe(f.subject);
    expect(get(DLQ_HEADERS.stream)).toBe(f.route.stream);
    expect(get(DLQ_HEADERS.seq)).toBe(String(pub.seq));
    expect(get(DLQ_HEADERS.delivery)).toBe("1");
    expect(Date.parse(get(DLQ_HEADERS.publishedAt) ?? "")).not.toBeNaN();
    expect(Date.parse(get(DLQ_HEADERS.deadLetteredAt) ?? "")).not.toBeNaN();
    expect(get(DLQ_HEADERS.contentType)).toBe("application/json");
    const excerpt = get(DLQ_HEADERS.response) ?? "";
    expect(excerpt.length).toBeGreaterThan(0);
    expect(excerpt).not.toMatch(/[\r\n]/);
    expect(Buffer.byteLength(excerpt)).toBeLessThanOrEqual(1024);
    // term() took it off the consumer: nothing pending, and no second request.
    await consumerIdle(f);
    expect(fn.requests).toHaveLength(1);
  });

  it("terminates with the reason where the server takes one (>= 2.10.4), bare where it would not", async () => {
    // The server's own record of the term: its advisory carries the reason only from 2.10.4 on, and an
    // older server given `+TERM <reason>` ignores the ack. Either way the feature gate must match it.
    const fn = await HttpFunction.start(() => ({ status: 422, body: { error: "amount: expected number" } }));
    const f = await setup(fn);
    const advisories = h.nc.subscribe(
      `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${f.route.stream}.${f.route.name}`,
      { max: 1, timeout: 10_000 },
    );
    await h.nc.flush();
    const pub = await h.js.publish(f.subject, "{}");
    let advisory: { stream_seq?: number; reason?: string } | undefined;
    for await (const m of advisories) advisory = m.json();
    expect(advisory?.stream_seq).toBe(pub.seq);
    const { termWithReason } = serverFeatures(h.nc.info?.version ?? "");
    if (termWithReason) expect(advisory?.reason).toBe("HTTP 422: amount: expected number");
    else expect(advisory?.reason ?? "").toBe("");
    await consumerIdle(f);
    expect(fn.requests).toHaveLength(1);
  });

  it("dead-letters without invoking a message delivered more than max_deliver times", async () => {
    const fn = await HttpFunction.start();
    const f = await routeFixture(h, fn.url, { max_deliver: 1, ack_wait: "1s" });
    cleanups.push(async () => {
      await f.consumer.stop(1_000);
      await fn.close();
    });
    await h.js.publish(f.subject, "{}");
    // A bridge that took the message and crashed before deciding: delivery 1 is never settled.
    const raw = await h.js.consumers.get(f.route.stream, f.route.name);
    const taken = await raw.next({ expires: 2_000 });
    expect(taken?.info.deliveryCount).toBe(1);
    await f.consumer.start();
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "dead_letter" });
    expect(f.outcomes[0]?.reason).toMatch(/delivery 2 exceeds max_deliver 1/);
    expect(fn.requests).toHaveLength(0);
    const [letter] = await f.dlq();
    expect(letter?.header.get(DLQ_HEADERS.delivery)).toBe("2");
    await consumerIdle(f);
  });
});

describe("RouteConsumer: what must never be acked", () => {
  it("a 2xx JSON body too large to read whole is dead-lettered, not acked without its events", async () => {
    const big = { events: [{ subject: "x.y", data: "z".repeat(2 * 1024 * 1024) }] };
    const fn = await HttpFunction.start(() => ({ status: 200, body: big }));
    const f = await setup(fn);
    await h.js.publish(f.subject, "{}");
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "dead_letter" });
    expect(f.outcomes[0]?.reason).toMatch(/too large to read its events/);
    const [letter] = await f.dlq();
    expect(Buffer.byteLength(letter?.header.get(DLQ_HEADERS.response) ?? "")).toBeLessThanOrEqual(1024);
  });

  it("a 2xx JSON object that does not parse (cut short) is dead-lettered, not acked without its events", async () => {
    const fn = await HttpFunction.start(() => ({
      status: 200,
      headers: { "content-type": "application/json" },
      body: '{"events":[{"subject":"x.y","data":1}]',
    }));
    const f = await setup(fn);
    await h.js.publish(f.subject, "{}");
    await settled(f);
    expect(f.outcomes[0]).toMatchObject({ outcome: "dead_letter" });
    expect(f.outcomes[0]?.reason).toBe("invalid response (HTTP 200): JSON body does not parse");
    expect(await f.dlq()).toHaveLength(1);
  });

  it("when the DLQ publish fails the message is nak'ed with a delay, and dead-lettered once the DLQ is back", async () => {
    const fn = await HttpFunction.start(() => ({ status: 422 }));
    const f = await setup(fn, { backoff: ["300ms"] });
    const dlq = await h.jsm.streams.info(f.dlqStream);
    await h.jsm.streams.delete(f.dlqStream);
    const failures: Error[] = [];
    f.events.on("dead_letter:failed", (_d, error) => {
      failures.push(error);
      void h.jsm.streams.add(dlq.config);
    });
    await h.js.publish(f.subject, "{}");
    await settled(f, 2);
    expect(failures[0]?.name).toBe("DeadLetterError");
    expect(f.outcomes[0]).toMatchObject({ outcome: "retry" });
    expect(f.outcomes[0]?.reason).toMatch(/^dead-lettering failed \(HTTP 422\)/);
    expect(f.outcomes[1]).toMatchObject({ outcome: "dead_letter", reason: "HTTP 422" });
    const [first, second] = fn.requests;
    expect(second?.headers["x-jetway-delivery"]).toBe("2");
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(200);
    expect(await f.dlq()).toHaveLength(1);
  });
});
