import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { newId } from "../db/ids.ts";
import { payments } from "../db/schema.ts";
import { InvalidEventError, RetryableError } from "../sdk/index.ts";
import type { ChargeInput, ChargeOutcome } from "./gateway.ts";

export type Payment = typeof payments.$inferSelect;

export interface OrderToCharge {
  order_id: string;
  /** The orders.created message id; unique per payment row. */
  message_id: string;
  total_minor: number;
  currency: string;
  payment_token: string;
}

export type ChargeFn = (idempotencyKey: string, input: ChargeInput) => Promise<ChargeOutcome>;

/**
 * Charges an order at most once, whatever arrives: redeliveries, concurrent duplicates, or a retry after
 * a crash between the gateway call and the ack.
 *  1. The payment row is claimed by order id (unique) — a duplicate finds it instead of making another.
 *  2. A row already settled is returned as is: the caller re-emits the same outcome.
 *  3. Otherwise the gateway is called with idempotency key = order id, so even two callers racing
 *     through step 2, or a caller whose earlier attempt charged but never recorded it, get the original
 *     charge back rather than a new one.
 *  4. The outcome is recorded only on a still-pending row; the first writer wins and everyone returns it.
 */
export async function chargeOnce(db: Db, order: OrderToCharge, chargeFn: ChargeFn): Promise<Payment> {
  const row = await claim(db, order);
  if (row.status !== "pending") return row;
  if (row.amount_minor !== order.total_minor || row.currency !== order.currency) {
    throw new InvalidEventError(
      `order ${order.order_id} was already billed for ${row.amount_minor} ${row.currency}, not ${order.total_minor} ${order.currency}`,
    );
  }
  const outcome = await chargeFn(order.order_id, {
    amount_minor: order.total_minor,
    currency: order.currency,
    token: order.payment_token,
    description: `order ${order.order_id}`,
  });
  const [settled] = await db
    .update(payments)
    .set({
      status: outcome.status,
      gateway_charge_id: outcome.chargeId ?? null,
      failure_reason: outcome.status === "declined" ? outcome.code : null,
      updated_at: sql`now()`,
      settled_at: sql`now()`,
    })
    .where(and(eq(payments.id, row.id), eq(payments.status, "pending")))
    .returning();
  return settled ?? (await load(db, order.order_id));
}

async function claim(db: Db, order: OrderToCharge): Promise<Payment> {
  const [inserted] = await db
    .insert(payments)
    .values({
      id: newId("pay"),
      order_id: order.order_id,
      message_id: order.message_id,
      amount_minor: order.total_minor,
      currency: order.currency,
    })
    .onConflictDoNothing()
    .returning();
  return inserted ?? (await load(db, order.order_id));
}

async function load(db: Db, orderId: string): Promise<Payment> {
  const [row] = await db.select().from(payments).where(eq(payments.order_id, orderId));
  // Conflict on message_id but no row for this order: the same message id was used for another order.
  if (!row) throw new InvalidEventError(`message already used for a different order than ${orderId}`);
  return row;
}

export type RefundFn = (idempotencyKey: string, chargeId: string) => Promise<string>;

/** The reason a payment that was never attempted reports. */
export const CANCELLED_REASON = "order_cancelled";

/**
 * Compensation when stock for the order was refused: a successful charge is refunded (once — the refund's
 * idempotency key derives from the order); an order not yet charged gets a `cancelled` row first, so a
 * late orders.created finds it and charges nothing. A charge still in flight is waited for (retry).
 */
export async function cancelPayment(db: Db, orderId: string, refundFn: RefundFn): Promise<Payment> {
  const [tombstone] = await db
    .insert(payments)
    .values({
      id: newId("pay"),
      order_id: orderId,
      message_id: `cancelled:${orderId}`,
      amount_minor: 0,
      currency: "XXX",
      status: "cancelled",
      failure_reason: CANCELLED_REASON,
      settled_at: sql`now()`,
    })
    .onConflictDoNothing()
    .returning();
  if (tombstone) return tombstone;
  const row = await load(db, orderId);
  if (row.status === "pending")
    throw new RetryableError(`charge of ${orderId} still in flight`, { retryAfterS: 2 });
  if (row.status !== "succeeded" || !row.gateway_charge_id) return row;
  const refundId = await refundFn(`refund:${orderId}`, row.gateway_charge_id);
  const [refunded] = await db
    .update(payments)
    .set({ status: "refunded", refund_id: refundId, updated_at: sql`now()` })
    .where(and(eq(payments.id, row.id), eq(payments.status, "succeeded")))
    .returning();
  return refunded ?? (await load(db, orderId));
}
