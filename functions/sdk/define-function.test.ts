import { describe, expect, it } from "vitest";
import { OrderCreated } from "../../schemas/orders.ts";
import { PaymentCompleted } from "../../schemas/payments.ts";
import { signBatch, signDelivery } from "./contract.ts";
import { defineFunction } from "./define-function.ts";
import { InvalidEventError, RetryableError } from "./errors.ts";
import { capturingLogger, order } from "./fixtures.test-helpers.ts";
import { invoke, invokeBatch } from "./testing.ts";
import type { InvokedEvent } from "./types.ts";

const TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function completed(orderId: string) {
  return {
    message_id: "01ARZ3NDEKTSV4RRFFQ69G5FAW",
    occurred_at: "2026-01-01T00:00:01Z",
    order_id: orderId,
    payment_id: "pay-1",
    amount_minor: 2500,
    currency: "EUR",
    gateway_charge_id: "ch_1",
  };
}

function paymentFunction() {
  const { log, lines } = capturingLogger();
  const seen: InvokedEvent<typeof OrderCreated>[] = [];
  const fn = defineFunction({ name: "payment", logger: log }).handle(OrderCreated, async (event, ctx) => {
    seen.push(event);
    ctx.log.info({ order_id: event.data.order_id }, "charging");
    switch (event.data.customer_id) {
      case "retry-later":
        throw new RetryableError("gateway busy", { retryAfterS: 2.5 });
      case "retry":
        throw new RetryableError("gateway busy");
      case "invalid":
        throw new InvalidEventError("customer is closed");
      case "crash":
        throw new Error("connect ECONNREFUSED postgres://admin:hunter2@db");
      case "bad-emit":
        ctx.emit(PaymentCompleted, { ...completed(event.data.order_id), currency: "euro" });
        return;
    }
    ctx.emit(PaymentCompleted, completed(event.data.order_id), { id: `payment:${event.data.order_id}` });
    ctx.emit(PaymentCompleted, completed("second"));
  });
  fn.app.get("/health", (c) => c.json({ ok: true }));
  return { fn, lines, seen };
}

describe("signature", () => {
  const { fn } = paymentFunction();

  it("accepts a correctly signed delivery", async () => {
    expect((await invoke(fn.app, OrderCreated, order(), { secret: "s3cret" })).status).toBe(200);
  });

  it("rejects a delivery without a signature with 401", async () => {
    const res = await invoke(fn.app, OrderCreated, order(), { env: { JETWAY_SECRET: "s3cret" } });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: { code: "invalid_signature", message: "signature missing: missing x-jetway-signature header" },
    });
  });

  it("rejects a body signed with another secret", async () => {
    const res = await invoke(fn.app, OrderCreated, order(), {
      secret: "forged",
      env: { JETWAY_SECRET: "s3cret" },
    });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain("mismatch");
  });

  it("binds a single delivery's id and type: a signed delivery replayed under another id or type is refused", async () => {
    const signed = await invoke(fn.app, OrderCreated, order(), { secret: "s3cret", id: "evt-1" });
    expect(signed.status).toBe(200);
    const signature = await signDelivery(
      "s3cret",
      { id: "evt-1", type: OrderCreated.subject },
      JSON.stringify(order()),
    );
    for (const headers of [{ "ce-id": "evt-2" }, { "ce-type": "orders.created.v2" }] as Record<
      string,
      string
    >[]) {
      const replayed = await invoke(fn.app, OrderCreated, order(), {
        id: "evt-1",
        env: { JETWAY_SECRET: "s3cret" },
        headers: { "x-jetway-signature": signature, ...headers },
      });
      expect(replayed.status).toBe(401);
      expect(await replayed.text()).toContain("does not match the body, id and type");
    }
  });

  it("refuses a single delivery signed over its body alone (a batch's signature, or a bridge older than v2)", async () => {
    const body = JSON.stringify(order());
    const res = await invoke(fn.app, OrderCreated, body, {
      env: { JETWAY_SECRET: "s3cret" },
      headers: { "x-jetway-signature": await signBatch("s3cret", body) },
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: {
        code: "invalid_signature",
        message:
          "signature unbound: signature does not cover the event's id and type (no v2): signed for another kind of request, or by a bridge older than this function",
      },
    });
  });

  it("rejects an expired signature", async () => {
    const signedAtS = Math.floor(Date.now() / 1000) - 3600;
    const res = await invoke(fn.app, OrderCreated, order(), { secret: "s3cret", signedAtS });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain("expired");
  });

  it("accepts JETWAY_SECRET_PREVIOUS beside JETWAY_SECRET while the key is rotated, and no other key", async () => {
    const env = { JETWAY_SECRET: "new", JETWAY_SECRET_PREVIOUS: "old" };
    for (const secret of ["new", "old"]) {
      expect((await invoke(fn.app, OrderCreated, order(), { secret, env })).status).toBe(200);
    }
    const other = await invoke(fn.app, OrderCreated, order(), { secret: "other", env });
    expect(other.status).toBe(401);
    expect(await other.text()).toContain("mismatch");
    const unsigned = await invoke(fn.app, OrderCreated, order(), { env });
    expect(unsigned.status).toBe(401);
    // Without the previous key, a delivery signed with it is refused.
    const retired = await invoke(fn.app, OrderCreated, order(), {
      secret: "old",
      env: { JETWAY_SECRET: "new" },
    });
    expect(retired.status).toBe(401);
  });

  it("reads the secret through the secret option", async () => {
    const custom = defineFunction({
      name: "custom",
      logger: capturingLogger().log,
      secret: (env) => env.PAYMENT_SECRET,
    }).handle(OrderCreated, () => {});
    const unsigned = await invoke(custom.app, OrderCreated, order(), { env: { PAYMENT_SECRET: "p" } });
    expect(unsigned.status).toBe(401);
    const signed = await invoke(custom.app, OrderCreated, order(), {
      secret: "p",
      env: { PAYMENT_SECRET: "p" },
    });
    expect(signed.status).toBe(200);
  });

  it("serves deliveries on the path option, where the testing helpers reach them", async () => {
    const hooked = defineFunction({ name: "hooked", logger: capturingLogger().log, path: "/hooks/jetway" })
      .handle(OrderCreated, () => {})
      .handleBatch(PaymentCompleted, () => {});
    const path = "/hooks/jetway";
    expect((await invoke(hooked.app, OrderCreated, order(), { secret: "s", path })).status).toBe(200);
    expect((await invokeBatch(hooked.app, [], { secret: "s", path })).status).toBe(200);
    expect((await invoke(hooked.app, OrderCreated, order(), { secret: "s" })).status).toBe(404);
  });

  it("leaves user routes alone", async () => {
    const res = await fn.app.request("/health", {}, { JETWAY_SECRET: "s3cret" });
    expect(await res.json()).toEqual({ ok: true });
  });
});

describe("parsing and validation", () => {
  const { fn } = paymentFunction();

  it("answers 400 for a body that is not JSON", async () => {
    const res = await invoke(fn.app, OrderCreated, "{not json");
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: { code: "bad_request", message: expect.stringMatching(/^invalid JSON: /) },
    });
  });

  it("answers 400 for a body that is not UTF-8, rather than reading it with its bytes replaced", async () => {
    const bytes = Buffer.from(JSON.stringify(order({ customer_id: "cus_XX" })));
    bytes[bytes.indexOf("XX")] = 0xff;
    const res = await fn.app.request("/events", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "ce-id": "u-1",
        "ce-type": OrderCreated.subject,
        "ce-specversion": "1.0",
      },
      body: bytes,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: { code: "bad_request", message: "body is not valid UTF-8" },
    });
  });

  it("answers 422 naming the subject and every failing field", async () => {
    const res = await invoke(fn.app, OrderCreated, {
      ...order(),
      currency: "eur",
      items: [{ sku: "A", quantity: 1.5, unit_price_minor: 1 }],
    });
    expect(res.status).toBe(422);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("invalid_event");
    expect(error.message).toMatch(/^orders\.created\.v1: /);
    expect(error.message).toContain("items.0.quantity");
    expect(error.message).toContain("currency");
  });

  it("answers 422 for a subject without a handler", async () => {
    const res = await invoke(fn.app, "orders.shipped.v1", order());
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({
      error: { code: "no_handler", message: "no handler for orders.shipped.v1" },
    });
  });

  it("answers 400 when ce-type is missing", async () => {
    const res = await fn.app.request("/events", { method: "POST", body: JSON.stringify(order()) });
    expect(res.status).toBe(400);
  });
});

describe("handling", () => {
  it("passes delivery metadata and typed data to the handler", async () => {
    const { fn, seen } = paymentFunction();
    await invoke(fn.app, OrderCreated, order(), {
      id: "m-9",
      seq: 42,
      delivery: 3,
      maxDeliver: 5,
      traceparent: TRACE,
    });
    expect(seen[0]).toMatchObject({
      id: "m-9",
      subject: "orders.created.v1",
      stream: "TEST",
      seq: 42,
      delivery: 3,
    });
    expect(seen[0]).toMatchObject({ maxDeliver: 5, traceparent: TRACE });
    // Defaults from the schema are applied before the handler sees the data.
    expect(seen[0]?.data.payment_method).toBe("card");
  });

  it("hands over the payload as published too: keys the contract drops, no defaults", async () => {
    const { fn, seen } = paymentFunction();
    const published = { ...order(), gift_note: "for Ada", items: [{ ...order().items[0], wrap: true }] };
    expect((await invoke(fn.app, OrderCreated, published as never)).status).toBe(200);
    expect(seen[0]?.raw).toEqual(published);
    expect(seen[0]?.data).not.toHaveProperty("gift_note");
    expect(seen[0]?.data.items[0]).not.toHaveProperty("wrap");
    expect(seen[0]?.data.payment_method).toBe("card");
  });

  it("returns emitted events, validated, with ids only where given", async () => {
    const { fn } = paymentFunction();
    const res = await invoke(fn.app, OrderCreated, order({ order_id: "o-7" }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      events: [
        { subject: "payments.completed.v1", data: completed("o-7"), id: "payment:o-7" },
        { subject: "payments.completed.v1", data: completed("second") },
      ],
    });
  });

  it("answers 500 when a handler emits data that breaks the contract", async () => {
    const { fn } = paymentFunction();
    const res = await invoke(fn.app, OrderCreated, order({ customer_id: "bad-emit" }));
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ error: { code: "invalid_emit" } });
  });

  it("maps RetryableError to 503 with Retry-After rounded up", async () => {
    const { fn } = paymentFunction();
    const later = await invoke(fn.app, OrderCreated, order({ customer_id: "retry-later" }));
    expect(later.status).toBe(503);
    expect(later.headers.get("retry-after")).toBe("3");
    expect(await later.json()).toEqual({ error: { code: "retryable", message: "gateway busy" } });
    const now = await invoke(fn.app, OrderCreated, order({ customer_id: "retry" }));
    expect(now.status).toBe(503);
    expect(now.headers.get("retry-after")).toBeNull();
  });

  it("maps InvalidEventError to 422", async () => {
    const { fn } = paymentFunction();
    const res = await invoke(fn.app, OrderCreated, order({ customer_id: "invalid" }));
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({ error: { code: "invalid_event", message: "customer is closed" } });
  });

  it("answers 500 for any other error without leaking it, and logs it with its stack", async () => {
    const { fn, lines } = paymentFunction();
    const res = await invoke(fn.app, OrderCreated, order({ customer_id: "crash" }));
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { code: "internal", message: "internal error" } });
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("at ");
    const logged = lines.find((l) => l.level === 50) as { err: { message: string; stack: string } };
    expect(logged.err.message).toContain("ECONNREFUSED");
    expect(logged.err.stack).toContain("define-function.test.ts");
  });
});

describe("logger", () => {
  it("binds function, message id, subject, stream, seq, delivery and trace id", async () => {
    const { fn, lines } = paymentFunction();
    await invoke(fn.app, OrderCreated, order(), { id: "m-1", seq: 7, delivery: 2, traceparent: TRACE });
    expect(lines.find((l) => l.msg === "charging")).toMatchObject({
      fn: "test-fn",
      msg_id: "m-1",
      subject: "orders.created.v1",
      stream: "TEST",
      seq: 7,
      delivery: 2,
      trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
      order_id: "o-1",
    });
  });

  it("takes a per-request level from JETWAY_LOG_LEVEL", async () => {
    const { log, lines } = capturingLogger("info");
    const fn = defineFunction({ name: "lvl", logger: log }).handle(OrderCreated, (_e, ctx) => {
      ctx.log.debug("detail");
    });
    await invoke(fn.app, OrderCreated, order());
    expect(lines.some((l) => l.msg === "detail")).toBe(false);
    await invoke(fn.app, OrderCreated, order(), { env: { JETWAY_LOG_LEVEL: "debug" } });
    expect(lines.some((l) => l.msg === "detail")).toBe(true);
  });
});

describe("unsigned mode", () => {
  it("warns once when no secret is configured", async () => {
    const { fn, lines } = paymentFunction();
    await invoke(fn.app, OrderCreated, order());
    await invoke(fn.app, OrderCreated, order());
    expect(lines.filter((l) => String(l.msg).startsWith("no JETWAY_SECRET"))).toHaveLength(1);
  });
});
