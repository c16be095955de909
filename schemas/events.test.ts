import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineEvent } from "./define.ts";
import {
  allEvents,
  InventoryRejected,
  InventoryReleased,
  InventoryReserved,
  OrderCancelled,
  OrderConfirmed,
  OrderCreated,
  PaymentCompleted,
  PaymentFailed,
} from "./index.ts";

const base = { message_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", occurred_at: "2026-01-01T10:00:00.000Z" };
const order = {
  ...base,
  order_id: "o-1",
  customer_id: "c-1",
  items: [{ sku: "SKU-1", quantity: 2, unit_price_minor: 1250 }],
  total_minor: 2500,
  currency: "EUR",
  payment_token: "tok_visa",
};
const valid = [
  [OrderCreated, order],
  [OrderConfirmed, { ...base, order_id: "o", customer_id: "c", payment_id: "p", reservation_id: "r" }],
  [OrderCancelled, { ...base, order_id: "o", customer_id: "c", reason: "payment failed: card_declined" }],
  [
    PaymentCompleted,
    { ...base, order_id: "o", payment_id: "p", amount_minor: 0, currency: "USD", gateway_charge_id: "ch" },
  ],
  [PaymentFailed, { ...base, order_id: "o", reason: "card_declined", amount_minor: 10, currency: "JPY" }],
  [InventoryReserved, { ...base, order_id: "o", reservation_id: "r", items: [{ sku: "A", quantity: 1 }] }],
  [InventoryRejected, { ...base, order_id: "o", reason: "out_of_stock", skus: ["A"] }],
  [
    InventoryReleased,
    {
      ...base,
      order_id: "o",
      reservation_id: "r",
      items: [{ sku: "A", quantity: 1 }],
      reason: "payment failed",
    },
  ],
] as const;

const issuePaths = (schema: z.ZodType, data: unknown) =>
  (schema.safeParse(data).error?.issues ?? []).map((i) => i.path.join("."));

describe("event contracts", () => {
  it("lists every contract once, with a versioned subject", () => {
    const subjects = allEvents.map((e) => e.subject);
    expect(new Set(subjects).size).toBe(subjects.length);
    expect(subjects).toEqual(valid.map(([type]) => type.subject));
  });

  it.each(valid)("accepts a well-formed %s", (type, data) => {
    expect(issuePaths(type.schema, data)).toEqual([]);
  });

  it("accepts a UUID message_id and an offset timestamp", () => {
    const data = {
      ...order,
      message_id: "0b6c8e3e-8f0e-4a4b-9a55-0a4c9b2f3f11",
      occurred_at: "2026-01-01T10:00:00+02:00",
    };
    expect(issuePaths(OrderCreated.schema, data)).toEqual([]);
  });

  it("never takes money as a float, nor a lower-case or long currency", () => {
    expect(issuePaths(OrderCreated.schema, { ...order, total_minor: 25.5 })).toEqual(["total_minor"]);
    expect(issuePaths(OrderCreated.schema, { ...order, currency: "eur" })).toEqual(["currency"]);
    expect(issuePaths(PaymentFailed.schema, { ...valid[4][1], currency: "EURO", amount_minor: -1 })).toEqual([
      "amount_minor",
      "currency",
    ]);
  });

  it("requires ids, items with a positive integer quantity, and a real message id", () => {
    const bad = {
      ...order,
      message_id: "not-an-id",
      order_id: undefined,
      items: [{ sku: "A", quantity: 0 }],
    };
    expect(issuePaths(OrderCreated.schema, bad)).toEqual([
      "message_id",
      "order_id",
      "items.0.quantity",
      "items.0.unit_price_minor",
    ]);
    expect(issuePaths(OrderCreated.schema, { ...order, items: [] })).toEqual(["items"]);
  });

  it("keeps only the fields it knows, so producers may add optional ones", () => {
    const parsed = OrderCreated.schema.parse({ ...order, gift_wrap: true });
    expect(parsed).not.toHaveProperty("gift_wrap");
    expect(parsed.payment_method).toBe("card");
  });
});

describe("defineEvent", () => {
  it("refuses a subject without a version", () => {
    expect(() => defineEvent("orders.created", z.object({}))).toThrow(/v<N>/);
    expect(defineEvent("orders.created.v2", z.object({})).subject).toBe("orders.created.v2");
  });
});
