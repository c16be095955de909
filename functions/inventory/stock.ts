import { and, eq, gte, inArray, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { newId } from "../db/ids.ts";
import { type ReservedItem, reservations, stock } from "../db/schema.ts";

export type Reservation = typeof reservations.$inferSelect;

/** One item per SKU, quantities summed, sorted by SKU so concurrent reservations lock rows in one order. */
export function mergeItems(items: readonly ReservedItem[]): ReservedItem[] {
  const totals = new Map<string, number>();
  for (const { sku, quantity } of items) totals.set(sku, (totals.get(sku) ?? 0) + quantity);
  return [...totals]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([sku, quantity]) => ({ sku, quantity }));
}

class OutOfStock extends Error {
  override name = "OutOfStock";
}

/**
 * Reserves every item of an order or none. One transaction: claim the order's reservation row (unique
 * order_id — a duplicate waits for the first and then sees its outcome), then in a savepoint decrement
 * each SKU with `available >= quantity` in the WHERE clause, so concurrent orders can never oversell; if
 * any SKU is short the savepoint rolls back and the row records the rejection instead.
 */
export async function reserve(db: Db, orderId: string, items: readonly ReservedItem[]): Promise<Reservation> {
  const wanted = mergeItems(items);
  return db.transaction(async (tx) => {
    const [claimed] = await tx
      .insert(reservations)
      .values({ id: newId("res"), order_id: orderId, items: wanted, status: "reserved" })
      .onConflictDoNothing()
      .returning();
    if (!claimed) return loadReservation(tx, orderId);
    try {
      await tx.transaction(async (sp) => {
        for (const { sku, quantity } of wanted) {
          const updated = await sp
            .update(stock)
            .set({ available: sql`${stock.available} - ${quantity}`, updated_at: sql`now()` })
            .where(and(eq(stock.sku, sku), gte(stock.available, quantity)))
            .returning({ sku: stock.sku });
          if (updated.length === 0) throw new OutOfStock(sku);
        }
      });
      return claimed;
    } catch (err) {
      if (!(err instanceof OutOfStock)) throw err;
      const { reason, skus } = await shortfall(tx, wanted, err.message);
      const [rejected] = await tx
        .update(reservations)
        .set({ status: "rejected", reason, rejected_skus: skus, updated_at: sql`now()` })
        .where(eq(reservations.id, claimed.id))
        .returning();
      return rejected ?? loadReservation(tx, orderId);
    }
  });
}

/** Which SKUs fell short, for the rejection event: unknown ones first, else those without enough stock. */
async function shortfall(db: Db, wanted: ReservedItem[], firstShort: string) {
  const rows = await db
    .select()
    .from(stock)
    .where(
      inArray(
        stock.sku,
        wanted.map((i) => i.sku),
      ),
    );
  const available = new Map(rows.map((r) => [r.sku, r.available]));
  const unknown = wanted.filter((i) => !available.has(i.sku)).map((i) => i.sku);
  if (unknown.length > 0) return { reason: "unknown_sku", skus: unknown };
  const short = wanted.filter((i) => (available.get(i.sku) ?? 0) < i.quantity).map((i) => i.sku);
  return { reason: "out_of_stock", skus: short.length > 0 ? short : [firstShort] };
}

export type ReleaseResult =
  /** Stock was given back now, or had been by an earlier delivery of the same release. */
  | { kind: "released"; reservation: Reservation }
  /** Nothing was held: rejected, or the order's reservation never happened. */
  | { kind: "nothing_held"; reservation: Reservation };

/**
 * Gives a reservation's stock back, once. If the release arrives before the reservation (events of two
 * streams race), a `released` tombstone with no items takes the order's row, so the late reservation
 * finds it and holds nothing.
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
