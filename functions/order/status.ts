import type { OrderInventoryStatus, OrderPaymentStatus, OrderStatus } from "../db/schema.ts";

/** The part of an order that events move. */
export interface OrderState {
  status: OrderStatus;
  payment_status: OrderPaymentStatus;
  inventory_status: OrderInventoryStatus;
  payment_id: string | null;
  reservation_id: string | null;
  cancel_reason: string | null;
}

export type OrderEvent =
  | { kind: "payment_completed"; payment_id: string }
  | { kind: "payment_failed"; reason: string }
  | { kind: "inventory_reserved"; reservation_id: string }
  | { kind: "inventory_rejected"; reason: string }
  | { kind: "inventory_released" };

export const isFinal = (status: OrderStatus): status is "confirmed" | "cancelled" =>
  status === "confirmed" || status === "cancelled";

/**
 * The order's state machine, pure. Events of different streams arrive in any order and may repeat, so
 * every rule is idempotent and order-insensitive: sub-statuses only move forward (a failure or a release
 * is never undone), and the order becomes `cancelled` as soon as either side refuses, `confirmed` once
 * both agree. A final status never changes.
 */
export function applyEvent(state: OrderState, event: OrderEvent): OrderState {
  const next = { ...state };
  switch (event.kind) {
    case "payment_completed":
      if (next.payment_status === "pending") {
        next.payment_status = "paid";
        next.payment_id = event.payment_id;
      }
      break;
    case "payment_failed":
      if (next.payment_status === "pending") next.payment_status = "failed";
      if (!isFinal(next.status)) next.cancel_reason ??= `payment_${event.reason}`;
      break;
    case "inventory_reserved":
      if (next.inventory_status === "pending") {
        next.inventory_status = "reserved";
        next.reservation_id = event.reservation_id;
      }
      break;
    case "inventory_rejected":
      if (next.inventory_status === "pending") next.inventory_status = "rejected";
      if (!isFinal(next.status)) next.cancel_reason ??= `inventory_${event.reason}`;
      break;
    case "inventory_released":
      next.inventory_status = "released";
      break;
  }
  if (isFinal(state.status)) return { ...next, status: state.status, cancel_reason: state.cancel_reason };
  if (next.payment_status === "failed" || next.inventory_status === "rejected") {
    next.status = "cancelled";
  } else if (next.payment_status === "paid" && next.inventory_status === "reserved") {
    next.status = "confirmed";
    next.cancel_reason = null;
  } else {
    // An event about the order proves orders.created went out, even if recording that did not.
    next.status = "placed";
  }
  if (next.status !== "cancelled") next.cancel_reason = null;
  return next;
}
