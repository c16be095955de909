import { eq, sql } from "drizzle-orm";
import { OrderCancelled, OrderConfirmed } from "../../schemas/index.ts";
import type { Db } from "../db/client.ts";
import { uuidFrom } from "../db/ids.ts";
import { markProcessed } from "../db/processed.ts";
import { orders } from "../db/schema.ts";
import { type Emit, InvalidEventError } from "../sdk/index.ts";
import { applyEvent, isFinal, type OrderEvent, type OrderState } from "./status.ts";
import type { Order } from "./store.ts";

const CONSUMER = "order";

/** The status fields of an order: what events change, and what GET /orders/:id shows. */
export const stateOf = (o: Order): OrderState => ({
  status: o.status,
  payment_status: o.payment_status,
  inventory_status: o.inventory_status,
  payment_id: o.payment_id,
  reservation_id: o.reservation_id,
  cancel_reason: o.cancel_reason,
});

const sameState = (a: OrderState, b: OrderState) =>
  (Object.keys(a) as (keyof OrderState)[]).every((k) => a[k] === b[k]);

/**
 * Applies one payment/inventory event to its order under a row lock (events for one order may arrive
 * concurrently from two streams). Returns whether the final status should be announced: when this
 * event made it final, or when this is a redelivery of an already-applied message (the first attempt's
 * announcement may have been lost with its response).
 */
export async function recordOrderEvent(
  db: Db,
  orderId: string,
  messageId: string,
  event: OrderEvent,
): Promise<{ order: Order; announce: boolean }> {
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(orders).where(eq(orders.id, orderId)).for("update");
    if (!row) throw new InvalidEventError(`unknown order ${orderId}`);
    const fresh = await markProcessed(tx, CONSUMER, messageId);
    const before = stateOf(row);
    const next = applyEvent(before, event);
    const becameFinal = !isFinal(before.status) && isFinal(next.status);
    let order = row;
    if (!sameState(before, next)) {
      const [updated] = await tx
        .update(orders)
        .set({ ...next, updated_at: sql`now()`, ...(becameFinal ? { finalized_at: sql`now()` } : {}) })
        .where(eq(orders.id, orderId))
        .returning();
      order = updated ?? row;
    }
    return { order, announce: becameFinal || (!fresh && isFinal(order.status)) };
  });
}

/** orders.confirmed.v1 / orders.cancelled.v1 for a final order; identical every time it is announced. */
export async function announceFinal(order: Order, emit: Emit): Promise<void> {
  const base = {
    message_id: await uuidFrom(`orders.final:${order.id}`),
    occurred_at: (order.finalized_at ?? order.updated_at).toISOString(),
    order_id: order.id,
    customer_id: order.customer_id,
  };
  const id = `orders-final:${order.id}`;
  if (order.status === "confirmed" && order.payment_id && order.reservation_id) {
    emit(
      OrderConfirmed,
      { ...base, payment_id: order.payment_id, reservation_id: order.reservation_id },
      { id },
    );
  } else if (order.status === "cancelled") {
    emit(OrderCancelled, { ...base, reason: (order.cancel_reason ?? "cancelled").slice(0, 200) }, { id });
  }
}
