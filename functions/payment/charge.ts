import { and, eq, getTableColumns, sql } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { anyOf, anyOfAt, asText, insertMissing, valueByKeyAt } from "../db/arrays.ts";
import type { Db } from "../db/client.ts";
import { newId } from "../db/ids.ts";
import { reusable } from "../db/prepared.ts";
import { payments } from "../db/schema.ts";
import { InvalidEventError, mapLimit, RetryableError } from "../sdk/index.ts";
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
  const [result] = await chargeMany(db, [order], chargeFn);
  if (!result?.ok) throw result?.error;
  return result.payment;
}

export type ChargeResult = { ok: true; payment: Payment } | { ok: false; error: unknown };

/**
 * Gateway calls in flight for one batch by default (GATEWAY_CHARGES_IN_FLIGHT): a batch should not look like
 * a burst to the gateway, yet a gateway taking 100 ms a charge then settles at most 160 orders a second a batch.
 */
export const CHARGES_IN_FLIGHT = 16;

/**
 * `chargeOnce` for many orders: one multi-row claim and one read of the rows already there, each order's
 * gateway call side by side, then one UPDATE settling every charged row. One result per order, in order;
 * a failure (gateway trouble, an order billed differently before) belongs to its order only.
 */
export async function chargeMany(
  db: Db,
  orders: readonly OrderToCharge[],
  chargeFn: ChargeFn,
  inFlight = CHARGES_IN_FLIGHT,
): Promise<ChargeResult[]> {
  const rows = await claimAll(db, orders);
  const attempts = await mapLimit(orders, inFlight, async (order) => {
    try {
      return await attempt(order, rows.get(order.order_id), chargeFn);
    } catch (error) {
      return { error };
    }
  });
  const settled = await settleAll(
    db,
    attempts.flatMap((a) => ("outcome" in a ? [a] : [])),
  );
  return attempts.map((a, i): ChargeResult => {
    if ("error" in a) return { ok: false, error: a.error };
    if ("payment" in a) return { ok: true, payment: a.payment };
    const payment = settled.get(a.row.id);
    if (payment) return { ok: true, payment };
    return { ok: false, error: new Error(`payment of ${orders[i]?.order_id} vanished while settling`) };
  });
}

type Attempt = { payment: Payment } | { row: Payment; outcome: ChargeOutcome };

const ZERO_TOTAL: ChargeOutcome = { status: "declined", code: "zero_amount", chargeId: undefined };

/** The row as it stands, or the gateway's answer for a row still pending. */
async function attempt(order: OrderToCharge, row: Payment | undefined, chargeFn: ChargeFn): Promise<Attempt> {
  if (!row) throw messageReused(order.order_id);
  if (row.status !== "pending") return { payment: row };
  if (row.amount_minor !== order.total_minor || row.currency !== order.currency) {
    throw new InvalidEventError(
      `order ${order.order_id} was already billed for ${row.amount_minor} ${row.currency}, not ${order.total_minor} ${order.currency}`,
    );
  }
  // The contract allows a total of 0, a card gateway does not: the order fails to pay, and is cancelled.
  if (order.total_minor === 0) return { row, outcome: ZERO_TOTAL };
  const outcome = await chargeFn(order.order_id, {
    amount_minor: order.total_minor,
    currency: order.currency,
    token: order.payment_token,
    description: `order ${order.order_id}`,
  });
  return { row, outcome };
}

/** settleAll's UPDATE: each row's values at its position in `keys`; only rows listed in `ids`, still pending. */
const settleStatement = reusable<Payment>(
  "settle_payments",
  (db) => {
    const byKey = (column: PgColumn, values: string) => valueByKeyAt(payments.id, column, "keys", values);
    return db
      .update(payments)
      .set({
        status: byKey(payments.status, "status"),
        gateway_charge_id: byKey(payments.gateway_charge_id, "charge_ids"),
        failure_reason: byKey(payments.failure_reason, "reasons"),
        updated_at: sql`now()`,
        settled_at: sql`now()`,
      })
      .where(and(anyOfAt(payments.id, "ids"), eq(payments.status, "pending")))
      .returning();
  },
  getTableColumns(payments),
);

/**
 * Records gateway outcomes on rows still pending, in one statement; the first writer wins, so a row some
 * concurrent duplicate settled first is read back as that writer left it. Returns every row by payment id.
 */
async function settleAll(db: Db, charged: readonly { row: Payment; outcome: ChargeOutcome }[]) {
  const result = new Map<string, Payment>();
  if (charged.length === 0) return result;
  const ids = [...new Set(charged.map((c) => c.row.id))];
  const updated = await settleStatement(db, {
    ids: asText(payments.id, ids),
    keys: asText(
      payments.id,
      charged.map((c) => c.row.id),
    ),
    status: asText(
      payments.status,
      charged.map((c) => c.outcome.status),
    ),
    charge_ids: asText(
      payments.gateway_charge_id,
      charged.map((c) => c.outcome.chargeId ?? null),
    ),
    reasons: asText(
      payments.failure_reason,
      charged.map((c) => (c.outcome.status === "declined" ? c.outcome.code : null)),
    ),
  });
  for (const row of updated) result.set(row.id, row);
  const others = ids.filter((id) => !result.has(id));
  if (others.length > 0)
    for (const row of await db.select().from(payments).where(anyOf(payments.id, others)))
      result.set(row.id, row);
  return result;
}

/** The claim INSERT, one text whatever the batch size. */
const claimStatement = insertMissing("claim_payments", payments, [
  "id",
  "order_id",
  "message_id",
  "amount_minor",
  "currency",
]);

/** Claims a payment row per order in one statement; rows that were there already are read back. */
async function claimAll(db: Db, orders: readonly OrderToCharge[]): Promise<Map<string, Payment>> {
  const first = new Map<string, OrderToCharge>();
  for (const o of orders) if (!first.has(o.order_id)) first.set(o.order_id, o);
  // Sorted, so overlapping batches take the unique-index locks in one order.
  const unique = [...first.values()].sort((a, b) => (a.order_id < b.order_id ? -1 : 1));
  const claimed = await claimStatement(
    db,
    unique.map((order) => ({
      id: newId("pay"),
      order_id: order.order_id,
      message_id: order.message_id,
      amount_minor: order.total_minor,
      currency: order.currency,
    })),
  );

  const rows = new Map(claimed.map((r) => [r.order_id, r]));
  const others = unique.filter((o) => !rows.has(o.order_id)).map((o) => o.order_id);
  if (others.length > 0) {
    for (const row of await db.select().from(payments).where(anyOf(payments.order_id, others)))
      rows.set(row.order_id, row);
  }
  return rows;
}

/** A claim conflicted on message_id, yet no row holds this order: the message id was used for another. */
const messageReused = (orderId: string) =>
  new InvalidEventError(`message already used for a different order than ${orderId}`);

async function load(db: Db, orderId: string): Promise<Payment> {
  const [row] = await db.select().from(payments).where(eq(payments.order_id, orderId));
  if (!row) throw messageReused(orderId);
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
