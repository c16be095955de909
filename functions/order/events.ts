import { sql } from "drizzle-orm";
import { OrderCancelled, OrderConfirmed } from "../../schemas/index.ts";
import { anyOfAt, asText, valueByKeyAt } from "../db/arrays.ts";
import type { Db } from "../db/client.ts";
import { uuidFrom } from "../db/ids.ts";
import { reusable } from "../db/prepared.ts";
import { markProcessedMany } from "../db/processed.ts";
import { orders } from "../db/schema.ts";
import { type Emit, InvalidEventError } from "../sdk/index.ts";
import { applyEvent, isFinal, type OrderEvent, type OrderState } from "./status.ts";
import type { Order } from "./store.ts";

const CONSUMER = "order";

/** The status fields of an order: what events change, and what GET /orders/:id shows. */
export const stateOf = (o: OrderState): OrderState => ({
  status: o.status,
  payment_status: o.payment_status,
  inventory_status: o.inventory_status,
  payment_id: o.payment_id,
  reservation_id: o.reservation_id,
  cancel_reason: o.cancel_reason,
});

const sameState = (a: OrderState, b: OrderState) =>
  (Object.keys(a) as (keyof OrderState)[]).every((k) => a[k] === b[k]);

export interface OrderEventInput {
  order_id: string;
  /** The event's message_id: applied once per order consumer (processed_messages). */
  message_id: string;
  event: OrderEvent;
}

/**
 * The columns the fold and its announcement read: not the order's items or its stored created event, two
 * JSON documents that would be sent, parsed and dropped twice per event (the SELECT and the RETURNING).
 */
const STATUS_COLUMNS = {
  id: orders.id,
  customer_id: orders.customer_id,
  status: orders.status,
  payment_status: orders.payment_status,
  inventory_status: orders.inventory_status,
  payment_id: orders.payment_id,
  reservation_id: orders.reservation_id,
  cancel_reason: orders.cancel_reason,
  finalized_at: orders.finalized_at,
  updated_at: orders.updated_at,
};

/** An order as the status fold sees it. */
export type OrderStatusRow = Pick<Order, keyof typeof STATUS_COLUMNS>;

/** The orders of a batch, locked in id order (`ids`: asText of the sorted ids). */
const lockOrders = reusable<OrderStatusRow>(
  "lock_orders",
  (db) =>
    db.select(STATUS_COLUMNS).from(orders).where(anyOfAt(orders.id, "ids")).orderBy(orders.id).for("update"),
  STATUS_COLUMNS,
);

/** The status columns the fold writes; each changed order gets its own values, keyed by id. */
const WRITTEN = [
  "status",
  "payment_status",
  "inventory_status",
  "payment_id",
  "reservation_id",
  "cancel_reason",
] as const satisfies readonly (keyof OrderState)[];

/** Every changed order of a batch in one UPDATE: `ids`, a value array per WRITTEN column, and `finals`. */
const writeOrders = reusable<OrderStatusRow>(
  "write_orders",
  (db) =>
    db
      .update(orders)
      .set({
        ...Object.fromEntries(WRITTEN.map((c) => [c, valueByKeyAt(orders.id, orders[c], "ids", c)])),
        updated_at: sql`now()`,
        finalized_at: sql`case when ${anyOfAt(orders.id, "finals")} then now() else ${orders.finalized_at} end`,
      })
      .where(anyOfAt(orders.id, "ids"))
      .returning(STATUS_COLUMNS),
  STATUS_COLUMNS,
);

export type RecordResult =
  | { ok: true; order: OrderStatusRow; announce: boolean }
  | { ok: false; error: InvalidEventError };

/**
 * Applies payment/inventory events to their orders in one transaction, under row locks taken in id order
 * (events for one order may arrive concurrently from two streams). Events apply in the given order, several
 * to one order included; each changed order is written once. `announce` says the final status should be
 * published: this event made it final, or it is a redelivery of an applied message (the first attempt's
 * announcement may have been lost with its response). An event for an unknown order is refused alone.
 */
export async function recordOrderEvents(db: Db, inputs: readonly OrderEventInput[]): Promise<RecordResult[]> {
  if (inputs.length === 0) return [];
  return db.transaction(async (tx) => {
    const ids = [...new Set(inputs.map((i) => i.order_id))].sort();
    const rows = await lockOrders(tx, { ids: asText(orders.id, ids) });
    const current = new Map(rows.map((r) => [r.id, r]));
    const known = inputs.filter((i) => current.has(i.order_id)).map((i) => i.message_id);
    const fresh = await markProcessedMany(tx, CONSUMER, known);
    const becameFinal = new Set<string>();
    const changed = new Set<string>();
    const decided = inputs.map((input) => {
      const row = current.get(input.order_id);
      if (!row) return undefined;
      const before = stateOf(row);
      const next = applyEvent(before, input.event);
      const final = !isFinal(before.status) && isFinal(next.status);
      if (final) becameFinal.add(row.id);
      if (!sameState(before, next)) {
        current.set(row.id, { ...row, ...next });
        changed.add(row.id);
      }
      return final || (!fresh.has(input.message_id) && isFinal(next.status));
    });
    // Every changed order in one statement: a batch is one UPDATE, not one per order.
    const rowsToWrite = [...changed].map((id) => current.get(id) as OrderStatusRow);
    if (rowsToWrite.length > 0) {
      const values: Record<string, unknown> = {
        ids: asText(
          orders.id,
          rowsToWrite.map((o) => o.id),
        ),
        // Always given (an empty list matches nothing).
        finals: asText(
          orders.id,
          rowsToWrite.filter((o) => becameFinal.has(o.id)).map((o) => o.id),
        ),
      };
      for (const c of WRITTEN)
        values[c] = asText(
          orders[c],
          rowsToWrite.map((o) => o[c]),
        );
      const updated = await writeOrders(tx, values);
      for (const row of updated) current.set(row.id, row);
    }
    return inputs.map((input, i): RecordResult => {
      const order = current.get(input.order_id);
      if (!order) return { ok: false, error: new InvalidEventError(`unknown order ${input.order_id}`) };
      return { ok: true, order, announce: decided[i] === true };
    });
  });
}

/** orders.confirmed.v1 / orders.cancelled.v1 for a final order; identical every time it is announced. */
export async function announceFinal(order: OrderStatusRow, emit: Emit): Promise<void> {
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
