import { eq, getTableColumns, sql } from "drizzle-orm";
import { anyOf, anyOfAt, asText, insertMissing, valueByKeyAt } from "../db/arrays.ts";
import type { Db } from "../db/client.ts";
import { newId } from "../db/ids.ts";
import { reusable } from "../db/prepared.ts";
import { type ReservedItem, reservations, stock } from "../db/schema.ts";

export type Reservation = typeof reservations.$inferSelect;

/** One item per SKU, quantities summed, sorted by SKU so concurrent reservations lock rows in one order. */
/** The SKU whose quantities add up past what a number counts exactly (each one alone may be valid). */
export function uncountableSku(items: readonly ReservedItem[]): string | undefined {
  return mergeItems(items).find((i) => !Number.isSafeInteger(i.quantity))?.sku;
}

export function mergeItems(items: readonly ReservedItem[]): ReservedItem[] {
  const totals = new Map<string, number>();
  for (const { sku, quantity } of items) totals.set(sku, (totals.get(sku) ?? 0) + quantity);
  return [...totals]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([sku, quantity]) => ({ sku, quantity }));
}

/** A reservation row per order, unless the order has one: the rows claimed come back. */
const claimReservations = insertMissing("claim_reservations", reservations, [
  "id",
  "order_id",
  "items",
  "status",
]);

/** The stock rows of `skus` (sorted), locked in SKU order. */
const lockStock = reusable<typeof stock.$inferSelect>(
  "lock_stock",
  (db) => db.select().from(stock).where(anyOfAt(stock.sku, "skus")).orderBy(stock.sku).for("update"),
  getTableColumns(stock),
);

/** Takes `quantities` from the stock of `skus`, position by position, in one statement. */
const takeStock = reusable("take_stock", (db) =>
  db
    .update(stock)
    .set({
      available: sql`${stock.available} - ${valueByKeyAt(stock.sku, stock.available, "skus", "quantities")}`,
      updated_at: sql`now()`,
    })
    .where(anyOfAt(stock.sku, "skus")),
);

export interface ReservationRequest {
  order_id: string;
  items: readonly ReservedItem[];
}

/**
 * Reserves every item of an order or none. One transaction: claim the order's reservation row (unique
 * order_id — a duplicate waits for the first and then sees its outcome), lock the SKUs' stock rows in SKU
 * order, decide, then take the stock; an order that cannot have every SKU records a rejection instead.
 * Concurrent orders can never oversell: the decision is made under the row locks.
 */
export async function reserve(db: Db, orderId: string, items: readonly ReservedItem[]): Promise<Reservation> {
  const [reservation] = await reserveMany(db, [{ order_id: orderId, items }]);
  if (!reservation) throw new Error(`no reservation for order ${orderId}`);
  return reservation;
}

/**
 * `reserve` for many orders in one transaction: one multi-row claim, one locking read of every SKU
 * involved, decisions in request order, one stock update per SKU. Returns one reservation per request,
 * in request order (a repeated order id gets the first one's).
 */
export async function reserveMany(db: Db, requests: readonly ReservationRequest[]): Promise<Reservation[]> {
  const wanted = new Map<string, ReservedItem[]>();
  for (const r of requests) if (!wanted.has(r.order_id)) wanted.set(r.order_id, mergeItems(r.items));
  if (wanted.size === 0) return [];
  const byOrder = await db.transaction(async (tx) => {
    // Sorted, so two batches claiming overlapping orders take the unique-index locks in one order.
    const claims = [...wanted.keys()].sort().map((order_id) => ({
      id: newId("res"),
      order_id,
      items: wanted.get(order_id) as ReservedItem[],
      status: "reserved",
    }));
    const claimed = await claimReservations(tx, claims);
    const result = new Map<string, Reservation>(claimed.map((r) => [r.order_id, r]));
    const skus = [...new Set(claimed.flatMap((r) => r.items.map((i) => i.sku)))].sort();
    const levels = new Map<string, number>();
    if (skus.length > 0) {
      const rows = await lockStock(tx, { skus: asText(stock.sku, skus) });
      for (const row of rows) levels.set(row.sku, row.available);
    }
    const taken = new Map<string, number>();
    const rejected: Reservation[] = [];
    for (const orderId of wanted.keys()) {
      const row = result.get(orderId);
      if (!row) continue;
      const refusal = shortfall(row.items, levels);
      if (refusal) {
        rejected.push({ ...row, status: "rejected", reason: refusal.reason, rejected_skus: refusal.skus });
        continue;
      }
      for (const { sku, quantity } of row.items) {
        levels.set(sku, (levels.get(sku) ?? 0) - quantity);
        taken.set(sku, (taken.get(sku) ?? 0) + quantity);
      }
    }
    // Issued together: postgres.js pipelines them on the transaction's connection.
    await Promise.all([
      taken.size > 0 &&
        takeStock(tx, {
          skus: asText(stock.sku, [...taken.keys()]),
          quantities: asText(stock.available, [...taken.values()]),
        }),
      ...rejected.map(async (r) => {
        const [row] = await tx
          .update(reservations)
          .set({
            status: "rejected",
            reason: r.reason,
            rejected_skus: r.rejected_skus,
            updated_at: sql`now()`,
          })
          .where(eq(reservations.id, r.id))
          .returning();
        result.set(r.order_id, row ?? r);
      }),
    ]);
    const others = [...wanted.keys()].filter((id) => !result.has(id));
    if (others.length > 0) {
      for (const row of await tx.select().from(reservations).where(anyOf(reservations.order_id, others)))
        result.set(row.order_id, row);
    }
    return result;
  });
  return requests.map((r) => {
    const reservation = byOrder.get(r.order_id);
    if (!reservation) throw new Error(`no reservation for order ${r.order_id}`);
    return reservation;
  });
}

/** Why an order cannot be reserved from these levels: unknown SKUs first, else those without enough stock. */
function shortfall(wanted: readonly ReservedItem[], levels: ReadonlyMap<string, number>) {
  const unknown = wanted.filter((i) => !levels.has(i.sku)).map((i) => i.sku);
  if (unknown.length > 0) return { reason: "unknown_sku", skus: unknown };
  const short = wanted.filter((i) => (levels.get(i.sku) ?? 0) < i.quantity).map((i) => i.sku);
  return short.length > 0 ? { reason: "out_of_stock", skus: short } : undefined;
}

export type ReleaseResult =
  /** Stock was given back now, or had been by an earlier delivery of the same release. */
  | { kind: "released"; reservation: Reservation }
  /** Nothing was held: rejected, or the order's reservation never happened. */
  | { kind: "nothing_held"; reservation: Reservation };

/** The row a release leaves when it overtakes the reservation: released, never having held anything. */
export const isTombstone = (r: Reservation): boolean => r.status === "released" && r.items.length === 0;

/**
 * Gives a reservation's stock back, once. If the release arrives before the reservation (events of two
 * streams race), a `released` tombstone with no items takes the order's row, so the late reservation
 * finds it, holds nothing, and announces the release (only it knows the order's items).
 */
export async function release(db: Db, orderId: string, reason: string): Promise<ReleaseResult> {
  return db.transaction(async (tx) => {
    const [tombstone] = await tx
      .insert(reservations)
      .values({ id: newId("res"), order_id: orderId, items: [], status: "released", reason })
      .onConflictDoNothing()
      .returning();
    if (tombstone) return { kind: "nothing_held", reservation: tombstone };
    const [row] = await tx
      .select()
      .from(reservations)
      .where(eq(reservations.order_id, orderId))
      .for("update");
    if (!row) throw new Error(`reservation of ${orderId} vanished`);
    if (row.status === "rejected" || row.items.length === 0)
      return { kind: "nothing_held", reservation: row };
    if (row.status === "released") return { kind: "released", reservation: row };
    for (const { sku, quantity } of row.items) {
      await tx
        .update(stock)
        .set({ available: sql`${stock.available} + ${quantity}`, updated_at: sql`now()` })
        .where(eq(stock.sku, sku));
    }
    const [released] = await tx
      .update(reservations)
      .set({ status: "released", reason, updated_at: sql`now()` })
      .where(eq(reservations.id, row.id))
      .returning();
    return { kind: "released", reservation: released ?? row };
  });
}

export async function loadReservation(db: Db, orderId: string): Promise<Reservation> {
  const [row] = await db.select().from(reservations).where(eq(reservations.order_id, orderId));
  if (!row) throw new Error(`no reservation for order ${orderId}`);
  return row;
}

/** Sets stock levels (development and tests): `{ "sku-1": 100 }`. */
export async function seedStock(db: Db, levels: Readonly<Record<string, number>>): Promise<void> {
  const rows = Object.entries(levels).map(([sku, available]) => ({ sku, available }));
  if (rows.length === 0) return;
  await db
    .insert(stock)
    .values(rows)
    .onConflictDoUpdate({
      target: stock.sku,
      set: { available: sql`excluded.available`, updated_at: sql`now()` },
    });
}

/** "sku-1=100,sku-2=5" → levels, for SEED_STOCK and the seed command. */
export function parseLevels(spec: string): Record<string, number> {
  const levels: Record<string, number> = {};
  for (const part of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [sku, n] = part.split("=");
    const available = Number(n);
    if (!sku || !Number.isInteger(available) || available < 0)
      throw new TypeError(`bad stock level "${part}"`);
    levels[sku] = available;
  }
  return levels;
}
