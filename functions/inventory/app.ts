import { eq } from "drizzle-orm";
import {
  InventoryRejected,
  InventoryReleased,
  InventoryReserved,
  OrderCreated,
  PaymentFailed,
} from "../../schemas/index.ts";
import type { DbProvider } from "../db/client.ts";
import { uuidFrom } from "../db/ids.ts";
import { type ReservedItem, stock } from "../db/schema.ts";
import { defineFunction, type Emit, InvalidEventError, type JetwayFunction } from "../sdk/index.ts";
import { isTombstone, mergeItems, type Reservation, release, reserveMany, uncountableSku } from "./stock.ts";

export interface InventoryDeps {
  db: DbProvider;
}

/**
 * inventory: orders.created.v1 → reserve all items or none → inventory.reserved.v1 / inventory.rejected.v1;
 * payments.failed.v1 → give the stock back → inventory.released.v1. A release that arrives before its
 * reservation holds nothing back; the late reservation then announces inventory.released.v1 instead, so
 * the order's inventory status always ends final. GET /stock/:sku reads a level.
 * A redelivery re-emits the identical event (same Nats-Msg-Id and message_id), so nothing downstream
 * sees it twice.
 */
export function createInventory(deps: InventoryDeps): JetwayFunction {
  const fn = defineFunction({ name: "inventory" })
    // A batch of orders is one transaction (one stock update per SKU); a single delivery is a batch of one.
    .handleBatch(OrderCreated, async (all, ctx) => {
      const events = all.filter((e) => {
        const sku = uncountableSku(e.data.items);
        if (sku === undefined) return true;
        ctx.failWith(e.id, new InvalidEventError(`items: the quantities of ${sku} add up past 2^53`));
        return false;
      });
      const reservations = await reserveMany(
        deps.db(ctx.c),
        events.map((e) => e.data),
      );
      let rejected = 0;
      for (const [i, event] of events.entries()) {
        const r = reservations[i] as Reservation;
        if (r.status === "rejected") rejected++;
        ctx.log.debug({ order_id: r.order_id, reservation_id: r.id, status: r.status }, "reservation");
        await emitReservation(r, event.data.items, ctx.emitterFor(event.id));
      }
      ctx.log.info({ orders: events.length, rejected }, "reservations");
    })
    .handle(PaymentFailed, async (event, ctx) => {
      const { order_id } = event.data;
      const result = await release(deps.db(ctx.c), order_id, "payment_failed");
      ctx.log.info({ order_id, result: result.kind }, "release");
      if (result.kind === "released") await emitReleased(result.reservation, ctx.emit);
    });
  fn.app.get("/stock/:sku", async (c) => {
    const [row] = await deps
      .db(c)
      .select()
      .from(stock)
      .where(eq(stock.sku, c.req.param("sku")));
    return row
      ? c.json({ sku: row.sku, available: row.available })
      : c.json({ error: { code: "not_found" } }, 404);
  });
  return fn;
}

async function emitReservation(
  r: Reservation,
  requested: readonly ReservedItem[],
  emit: Emit,
): Promise<void> {
  const base = { order_id: r.order_id, occurred_at: r.updated_at.toISOString() };
  // reserved and rejected are the two outcomes of one decision: they share a Nats-Msg-Id.
  const id = `inventory:${r.order_id}`;
  if (r.status === "reserved") {
    const message_id = await uuidFrom(`inventory.reserved:${r.order_id}`);
    emit(InventoryReserved, { ...base, message_id, reservation_id: r.id, items: r.items }, { id });
  } else if (r.status === "rejected") {
    const message_id = await uuidFrom(`inventory.rejected:${r.order_id}`);
    const skus = r.rejected_skus?.length ? r.rejected_skus : r.items.map((i) => i.sku);
    emit(InventoryRejected, { ...base, message_id, reason: r.reason ?? "out_of_stock", skus }, { id });
  } else if (isTombstone(r)) {
    // The release came first and found nothing to give back, so only this reservation knows the items.
    // They were never held: "released" is their true end state, and it is the same fact (same ids) a
    // release of held stock announces.
    await emitReleased(r, emit, mergeItems(requested));
  }
  // released with items: the release itself announced it.
}

async function emitReleased(r: Reservation, emit: Emit, items = r.items): Promise<void> {
  const message_id = await uuidFrom(`inventory.released:${r.order_id}`);
  emit(
    InventoryReleased,
    {
      message_id,
      occurred_at: r.updated_at.toISOString(),
      order_id: r.order_id,
      reservation_id: r.id,
      items,
      reason: r.reason ?? "payment_failed",
    },
    { id: `inventory-released:${r.order_id}` },
  );
}
