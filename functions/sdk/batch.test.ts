import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { InventoryReserved } from "../../schemas/inventory.ts";
import { OrderCreated } from "../../schemas/orders.ts";
import { PaymentCompleted } from "../../schemas/payments.ts";
import { signDelivery } from "./contract.ts";
import { defineFunction } from "./define-function.ts";
import { InvalidEventError, RetryableError } from "./errors.ts";
import { capturingLogger, order } from "./fixtures.test-helpers.ts";
import { batchEvent, invoke, invokeBatch } from "./testing.ts";

function reserved(orderId: string) {
  return {
    message_id: "01ARZ3NDEKTSV4RRFFQ69G5FAX",
    occurred_at: "2026-01-01T00:00:02Z",
    order_id: orderId,
    reservation_id: `res-${orderId}`,
    items: [{ sku: "SKU-1", quantity: 2 }],
  };
}

interface BatchBody {
  failures: { id: string; reason: string; retry_after?: number; dead_letter?: boolean }[];
  events: Record<string, { subject: string; data: { order_id: string }; id?: string }[]>;
}

/** Inventory handles orders a batch at a time; payments (per event) rides along through `.handle`. */
function inventoryFunction(options: { throwInBatch?: Error } = {}) {
  const calls: string[][] = [];
  const fn = defineFunction({ name: "inventory", logger: capturingLogger().log })
    .handleBatch(OrderCreated, async (events, ctx) => {
      calls.push(events.map((e) => e.id));
      for (const e of events) {
        if (e.data.customer_id === "busy") ctx.fail(e.id, { reason: "stock locked", retryAfterS: 4 });
        else if (e.data.customer_id === "gone") ctx.fail(e.id, { reason: "unknown_sku", deadLetter: true });
        else if (e.data.customer_id === "slow")
          ctx.failWith(e.id, new RetryableError("queue full", { retryAfterS: 7 }));
        else if (e.data.customer_id === "bad") ctx.failWith(e.id, new InvalidEventError("unknown customer"));
        else if (e.data.customer_id === "bug") ctx.failWith(e.id, new TypeError("secret detail"));
        else
          ctx.emitFor(e.id, InventoryReserved, reserved(e.data.order_id), {
            id: `reserve:${e.data.order_id}`,
          });
      }
      if (options.throwInBatch) throw options.throwInBatch;
    })
    .handle(PaymentCompleted, async (event, ctx) => {
      if (event.data.payment_id === "later") throw new RetryableError("ledger busy", { retryAfterS: 1 });
      if (event.data.payment_id === "never") throw new InvalidEventError("no such order");
      ctx.emit(InventoryReserved, reserved(event.data.order_id));
    });
  return { fn, calls };
}

const payment = (orderId: string, paymentId: string) => ({
  message_id: "01ARZ3NDEKTSV4RRFFQ69G5FAY",
  occurred_at: "2026-01-01T00:00:03Z",
  order_id: orderId,
  payment_id: paymentId,
  amount_minor: 100,
  currency: "EUR",
  gateway_charge_id: "ch",
});

describe("batch delivery", () => {
  it("a batch's log lines follow JETWAY_LOG_LEVEL, as a single delivery's do", async () => {
    const { log, lines } = capturingLogger();
    const fn = defineFunction({ name: "quiet", logger: log }).handleBatch(OrderCreated, (events, ctx) => {
      ctx.log.info({ n: events.length }, "batch info");
      ctx.log.warn("batch warn");
    });
    const res = await invokeBatch(fn.app, [batchEvent("a", OrderCreated, order())], {
      env: { JETWAY_LOG_LEVEL: "warn" },
    });
    expect(res.status).toBe(200);
    const mine = lines.filter((l) => String(l.msg).startsWith("batch"));
    expect(mine.map((l) => l.msg)).toEqual(["batch warn"]);
    expect(mine[0]).toMatchObject({ batch_size: 1, subject: "orders.created.v1" });
  });

  it("hands each event's payload over as published too, base64-encoded ones included", async () => {
    const seen: unknown[][] = [];
    const fn = defineFunction({ name: "archive", logger: capturingLogger().log }).handleBatch(
      OrderCreated,
      (events) => {
        seen.push(events.map((e) => e.raw));
        expect(events.every((e) => !("gift_note" in e.data) && e.data.payment_method === "card")).toBe(true);
      },
    );
    const published = { ...order(), gift_note: "for Ada" };
    const encoded = { ...order({ order_id: "o-2" }), gift_note: "for Bo" };
    const base64 = Buffer.from(JSON.stringify(encoded)).toString("base64");
    const res = await invokeBatch(fn.app, [
      batchEvent("a", OrderCreated, published),
      { ...batchEvent("b", OrderCreated, undefined), data: undefined, data_base64: base64 },
    ]);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ failures: [], events: {} });
    expect(seen).toEqual([[published, encoded]]);
  });

  it("failWith() fails one message as the error would fail a single delivery", async () => {
    const { fn } = inventoryFunction();
    const res = await invokeBatch(fn.app, [
      batchEvent("s", OrderCreated, order({ order_id: "o-s", customer_id: "slow" })),
      batchEvent("b", OrderCreated, order({ order_id: "o-b", customer_id: "bad" })),
      batchEvent("x", OrderCreated, order({ order_id: "o-x", customer_id: "bug" })),
      batchEvent("ok", OrderCreated, order({ order_id: "o-ok" })),
    ]);
    const body = (await res.json()) as BatchBody;
    expect(body.failures).toEqual([
      { id: "s", reason: "queue full", retry_after: 7 },
      { id: "b", reason: "unknown customer", dead_letter: true },
      { id: "x", reason: "internal error" },
    ]);
    expect(Object.keys(body.events)).toEqual(["ok"]);
  });

  it("an event that breaks its contract fails its own message only; the others keep their events", async () => {
    const fn = defineFunction({ name: "inventory", logger: capturingLogger().log }).handleBatch(
      OrderCreated,
      (events, ctx) => {
        for (const e of events) {
          const reservation = reserved(e.data.order_id);
          if (e.data.customer_id === "huge") reservation.items = [{ sku: "SKU-1", quantity: 2 ** 53 }];
          ctx.emitFor(e.id, InventoryReserved, reservation);
        }
      },
    );
    const res = await invokeBatch(fn.app, [
      batchEvent("a", OrderCreated, order({ order_id: "o-a" })),
      batchEvent("h", OrderCreated, order({ order_id: "o-h", customer_id: "huge" })),
      batchEvent("b", OrderCreated, order({ order_id: "o-b" })),
    ]);
    expect(res.status).toBe(200);
    const body = (await res.json()) as BatchBody;
    expect(body.failures).toEqual([
      { id: "h", reason: expect.stringMatching(/^emitted inventory\.reserved\.v1: items\.0\.quantity/) },
    ]);
    expect(Object.keys(body.events)).toEqual(["a", "b"]);
  });

  it("acks, retries and dead-letters per message, and groups events by input id", async () => {
    const { fn, calls } = inventoryFunction();
    const res = await invokeBatch(fn.app, [
      batchEvent("a", OrderCreated, order({ order_id: "o-a" })),
      batchEvent("b", OrderCreated, order({ order_id: "o-b", customer_id: "busy" })),
      batchEvent("c", OrderCreated, order({ order_id: "o-c", customer_id: "gone" })),
      batchEvent("d", OrderCreated, { ...order(), total_minor: 12.5 }),
      batchEvent("e", "orders.shipped.v1", {}),
      batchEvent("f", OrderCreated, order(), { specversion: "0.3" }),
      batchEvent("g", PaymentCompleted, payment("o-g", "ok")),
      batchEvent("h", PaymentCompleted, payment("o-h", "later")),
      batchEvent("i", PaymentCompleted, payment("o-i", "never")),
      batchEvent("j", OrderCreated, order({ order_id: "o-j" })),
    ]);
    expect(res.status).toBe(200);
    const body = (await res.json()) as BatchBody;
    // The batch handler ran once, with every valid event of its type.
    expect(calls).toEqual([["a", "b", "c", "j"]]);
    const byId = Object.fromEntries(body.failures.map((f) => [f.id, f]));
    expect(Object.keys(byId).sort()).toEqual(["b", "c", "d", "e", "f", "h", "i"]);
    expect(byId.b).toEqual({ id: "b", reason: "stock locked", retry_after: 4 });
    expect(byId.c).toEqual({ id: "c", reason: "unknown_sku", dead_letter: true });
    expect(byId.d).toMatchObject({ dead_letter: true, reason: expect.stringContaining("total_minor") });
    expect(byId.e).toEqual({ id: "e", reason: "no handler for orders.shipped.v1", dead_letter: true });
    expect(byId.f).toMatchObject({ dead_letter: true, reason: expect.stringContaining("specversion") });
    expect(byId.h).toEqual({ id: "h", reason: "ledger busy", retry_after: 1 });
    expect(byId.i).toEqual({ id: "i", reason: "no such order", dead_letter: true });
    expect(Object.keys(body.events).sort()).toEqual(["a", "g", "j"]);
    expect(body.events.a).toEqual([
      { subject: "inventory.reserved.v1", data: reserved("o-a"), id: "reserve:o-a" },
    ]);
    expect(body.events.g?.[0]?.data.order_id).toBe("o-g");
  });

  it("fails every message of a type when its batch handler throws, and drops their events", async () => {
    const { fn } = inventoryFunction({ throwInBatch: new Error("deadlock detected: secret detail") });
    const res = await invokeBatch(fn.app, [
      batchEvent("a", OrderCreated, order()),
      batchEvent("b", OrderCreated, order({ customer_id: "gone" })),
      batchEvent("g", PaymentCompleted, payment("o-g", "ok")),
    ]);
    const body = (await res.json()) as BatchBody;
    expect(body.failures).toEqual(
      expect.arrayContaining([
        { id: "a", reason: "internal error" },
        { id: "b", reason: "unknown_sku", dead_letter: true },
      ]),
    );
    expect(body.failures).toHaveLength(2);
    expect(Object.keys(body.events)).toEqual(["g"]);
    expect(JSON.stringify(body)).not.toContain("secret detail");
  });

  it("checks the signature over the whole body", async () => {
    const { fn } = inventoryFunction();
    const events = [batchEvent("a", OrderCreated, order())];
    expect((await invokeBatch(fn.app, events, { secret: "k" })).status).toBe(200);
    const unsigned = await invokeBatch(fn.app, events, { env: { JETWAY_SECRET: "k" } });
    expect(unsigned.status).toBe(401);
  });

  it("refuses a body signed as a single delivery, or over the body alone: only b1 says it is a batch", async () => {
    const { fn, calls } = inventoryFunction();
    const body = JSON.stringify([batchEvent("forged-1", OrderCreated, order())]);
    // A producer's message whose payload is a batch: the bridge signs a single delivery over it (v2).
    const single = await signDelivery("k", { id: "m-1", type: OrderCreated.subject }, body);
    const t = Math.floor(Date.now() / 1000);
    const v1Only = `t=${t},v1=${createHmac("sha256", "k").update(`${t}.${body}`).digest("hex")}`;
    for (const signature of [single, v1Only]) {
      const res = await invokeBatch(fn.app, body, {
        env: { JETWAY_SECRET: "k" },
        headers: { "x-jetway-signature": signature },
      });
      expect(res.status).toBe(401);
      expect(await res.text()).toContain("no b1");
    }
    expect(calls).toEqual([]);
  });

  it("answers 400 for a body that is not an array, or an element without id", async () => {
    const { fn } = inventoryFunction();
    expect((await invokeBatch(fn.app, "{}")).status).toBe(400);
    expect((await invokeBatch(fn.app, "[")).status).toBe(400);
    const noId = await invokeBatch(fn.app, [{ ...batchEvent("x", OrderCreated, order()), id: undefined }]);
    expect(noId.status).toBe(400);
    expect(await noId.json()).toEqual({
      error: { code: "bad_request", message: "batch element 0 has no id" },
    });
  });

  it("decodes data_base64 and dead-letters it when it is not JSON", async () => {
    const { fn } = inventoryFunction();
    const b64 = (s: string) => btoa(s);
    const res = await invokeBatch(fn.app, [
      { ...batchEvent("a", OrderCreated, undefined), data_base64: b64(JSON.stringify(order())) },
      { ...batchEvent("b", OrderCreated, undefined), data_base64: b64("not json") },
    ]);
    const body = (await res.json()) as BatchBody;
    expect(body.failures).toEqual([
      { id: "b", reason: expect.stringMatching(/^invalid JSON/), dead_letter: true },
    ]);
    expect(Object.keys(body.events)).toEqual(["a"]);
  });

  it("runs a batch-only handler for a single delivery and maps its verdict to a status", async () => {
    const { fn } = inventoryFunction();
    const ok = await invoke(fn.app, OrderCreated, order({ order_id: "o-1" }));
    expect(await ok.json()).toEqual({
      events: [{ subject: "inventory.reserved.v1", data: reserved("o-1"), id: "reserve:o-1" }],
    });
    const busy = await invoke(fn.app, OrderCreated, order({ customer_id: "busy" }));
    expect(busy.status).toBe(503);
    expect(busy.headers.get("retry-after")).toBe("4");
    const gone = await invoke(fn.app, OrderCreated, order({ customer_id: "gone" }));
    expect(gone.status).toBe(422);
  });
});
