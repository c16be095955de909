import { describe, expect, it } from "vitest";
import { applyEvent, type OrderEvent, type OrderState } from "./status.ts";

const placed: OrderState = {
  status: "placed",
  payment_status: "pending",
  inventory_status: "pending",
  payment_id: null,
  reservation_id: null,
  cancel_reason: null,
};

const paid: OrderEvent = { kind: "payment_completed", payment_id: "pay_1" };
const declined: OrderEvent = { kind: "payment_failed", reason: "card_declined" };
const reserved: OrderEvent = { kind: "inventory_reserved", reservation_id: "res_1" };
const rejected: OrderEvent = { kind: "inventory_rejected", reason: "out_of_stock" };
const released: OrderEvent = { kind: "inventory_released" };

const run = (events: OrderEvent[], from: OrderState = placed) => events.reduce(applyEvent, from);

describe("applyEvent", () => {
  it.each([
    [[paid], "placed", "paid", "pending", null],
    [[paid, reserved], "confirmed", "paid", "reserved", null],
    [[reserved, paid], "confirmed", "paid", "reserved", null],
    [[declined], "cancelled", "failed", "pending", "payment_card_declined"],
    [[reserved, declined, released], "cancelled", "failed", "released", "payment_card_declined"],
    [[declined, released, reserved], "cancelled", "failed", "released", "payment_card_declined"],
    [[rejected, paid], "cancelled", "paid", "rejected", "inventory_out_of_stock"],
    [[paid, rejected, declined], "cancelled", "paid", "rejected", "inventory_out_of_stock"],
    [[paid, paid, reserved, reserved], "confirmed", "paid", "reserved", null],
  ] as const)("%j → %s", (events, status, payment, inventory, reason) => {
    const state = run([...events]);
    expect(state).toMatchObject({
      status,
      payment_status: payment,
      inventory_status: inventory,
      cancel_reason: reason,
    });
  });

  it("keeps a final status and the first reason", () => {
    const confirmed = run([paid, reserved]);
    expect(run([declined, rejected], confirmed).status).toBe("confirmed");
    const cancelled = run([declined]);
    expect(run([rejected, paid, reserved], cancelled)).toMatchObject({
      status: "cancelled",
      cancel_reason: "payment_card_declined",
    });
  });

  it("an event moves a pending_publish order to placed", () => {
    expect(applyEvent({ ...placed, status: "pending_publish" }, paid).status).toBe("placed");
  });

  it("records the ids the confirmation needs", () => {
    expect(run([paid, reserved])).toMatchObject({ payment_id: "pay_1", reservation_id: "res_1" });
  });
});
