import { eq } from "drizzle-orm";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EventInput, OrderCreated, PaymentFailed } from "../../schemas/index.ts";
import type { DbHandle } from "../db/client.ts";
import { stock } from "../db/schema.ts";
import { createTestDb } from "../db/testing.ts";
import { createInventory } from "../inventory/app.ts";
import { seedStock } from "../inventory/stock.ts";
import { invoke } from "../sdk/testing.ts";
import { createOrder } from "./app.ts";
import { insertOrder, loadOrder } from "./store.ts";

/*
 * A cancelled order's inventory status must end final whichever of orders.created (→ inventory) and
 * payments.failed (→ inventory and order) arrives first. Both functions share one database, and each
 * event inventory emits is handed to the order function as the bridge would.
 */

let handle: DbHandle;
let inventory: ReturnType<typeof createInventory>;
let order: ReturnType<typeof createOrder>;
const env = { JETWAY_LOG_LEVEL: "silent" };

beforeAll(async () => {
  handle = await createTestDb();
  inventory = createInventory({ db: () => handle.db });
  order = createOrder({ db: () => handle.db });
});
afterAll(async () => {
  await handle?.close();
});

interface Emitted {
  subject: string;
  id: string;
  data: Record<string, unknown>;
}

/** Delivers one message to a function and answers the events it emitted. */
async function deliver(fn: { app: Parameters<typeof invoke>[0] }, subject: string, data: object, id: string) {
  const res = await invoke(fn.app, subject, JSON.stringify(data), { id, env });
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: Emitted[] }).events;
}

/** Hands inventory's events to the order function, as the order-status-inventory route does. */
async function toOrder(events: Emitted[]) {
  for (const e of events) await deliver(order, e.subject, e.data, e.id);
}

const STOCK = 5;

/** An order of 3 units of a fresh SKU (5 in stock), stored with its outbox event, and its messages. */
async function placeOrder() {
  const sku = `sku-${ulid()}`;
  await seedStock(handle.db, { [sku]: STOCK });
  const items = [{ sku, quantity: 3, unit_price_minor: 100 }];
  const { order: placed } = await insertOrder(handle.db, {
    request: { customer_id: "cus_1", items, currency: "EUR", payment_token: "tok_decline" },
    total_minor: 300,
    request_hash: "h",
    idempotency_key: `key-${ulid()}`,
    event: (order_id): EventInput<typeof OrderCreated> => ({
      message_id: ulid(),
      occurred_at: new Date().toISOString(),
      order_id,
      customer_id: "cus_1",
      items,
      total_minor: 300,
      currency: "EUR",
      payment_token: "tok_decline",
    }),
  });
  const created = OrderCreated.schema.parse(placed.created_event);
  const failed: EventInput<typeof PaymentFailed> = {
    message_id: ulid(),
    occurred_at: new Date().toISOString(),
    order_id: placed.id,
    reason: "card_declined",
    amount_minor: 300,
    currency: "EUR",
  };
  return {
    reserve: () => deliver(inventory, OrderCreated.subject, created, created.message_id),
    release: () => deliver(inventory, PaymentFailed.subject, failed, failed.message_id),
    cancel: () => deliver(order, PaymentFailed.subject, failed, failed.message_id),
    state: () => loadOrder(handle.db, placed.id),
    level: async () => (await handle.db.select().from(stock).where(eq(stock.sku, sku)))[0]?.available,
  };
}
type Placed = Awaited<ReturnType<typeof placeOrder>>;

const subjects = (events: Emitted[]) => events.map((e) => e.subject);

/** Hands inventory's release to the order: it must end cancelled and released, with the stock whole. */
async function expectReleased(o: Placed, released: Emitted[]) {
  expect(subjects(released)).toEqual(["inventory.released.v1"]);
  await toOrder(released);
  const settled = await o.state();
  expect(settled).toMatchObject({
    status: "cancelled",
    payment_status: "failed",
    inventory_status: "released",
    cancel_reason: "payment_card_declined",
  });
  expect(await o.level()).toBe(STOCK);
  return settled;
}

describe("a cancelled order's inventory status", () => {
  it("ends released when the release reaches inventory before the reservation", async () => {
    const o = await placeOrder();
    expect(await o.release()).toEqual([]); // nothing held yet: a tombstone
    const cancelled = await o.cancel();
    expect(subjects(cancelled)).toEqual(["orders.cancelled.v1"]);
    expect(await o.state()).toMatchObject({ status: "cancelled", inventory_status: "pending" });
    const late = await o.reserve();
    const settled = await expectReleased(o, late);

    // Redelivered, either message changes nothing: the same events, the same order, the same stock.
    expect(await o.reserve()).toEqual(late);
    await toOrder(late);
    expect(await o.release()).toEqual([]);
    expect(await o.cancel()).toEqual(cancelled);
    expect(await o.state()).toEqual(settled);
    expect(await o.level()).toBe(STOCK);
  });

  it("ends released when the reservation comes first, as before", async () => {
    const o = await placeOrder();
    const reserved = await o.reserve();
    expect(subjects(reserved)).toEqual(["inventory.reserved.v1"]);
    await toOrder(reserved);
    expect(await o.level()).toBe(STOCK - 3);
    const cancelled = await o.cancel();
    expect(subjects(cancelled)).toEqual(["orders.cancelled.v1"]);
    const released = await o.release();
    const settled = await expectReleased(o, released);

    // Redelivered: the given-back reservation announces nothing (the release did), the release the same
    // event again; nothing moves.
    expect(await o.reserve()).toEqual([]);
    expect(await o.release()).toEqual(released);
    await toOrder([...reserved, ...released]);
    expect(await o.cancel()).toEqual(cancelled);
    expect(await o.state()).toEqual(settled);
    expect(await o.level()).toBe(STOCK);
  });
});
