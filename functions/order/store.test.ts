import { inArray } from "drizzle-orm";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import type { DbHandle } from "../db/client.ts";
import { orders } from "../db/schema.ts";
import { createTestDb } from "../db/testing.ts";
import { insertOrder, markPublished } from "./store.ts";

let handle: DbHandle;
beforeAll(async () => {
  handle = await createTestDb();
});
afterAll(async () => {
  await handle?.close();
});

const newOrder = (key: string | undefined) =>
  insertOrder(handle.db, {
    request: {
      customer_id: "cus_1",
      items: [{ sku: "sku-1", quantity: 1, unit_price_minor: 100 }],
      currency: "EUR",
      payment_token: "tok_visa",
    },
    total_minor: 100,
    request_hash: "h",
    idempotency_key: key,
    event: (order_id) => ({ order_id }),
  });

it("orders published in one event-loop turn are marked placed by one UPDATE", async () => {
  const ids = await Promise.all(
    ["m-1", "m-2", "m-3"].map(async (k) => (await newOrder(`${k}-${Date.now()}`)).order.id),
  );
  // The statement's text is built on first use; every statement a handle runs goes through its session.
  await markPublished(handle.db, ids[2] as string);
  const statements = vi.spyOn(handle.db._.session, "prepareQuery");
  const update = vi.spyOn(handle.db, "update");
  try {
    await Promise.all(ids.map((id) => markPublished(handle.db, id)));
    expect(statements).toHaveBeenCalledTimes(1);
    // A later turn gets its own statement, its text not built again.
    await markPublished(handle.db, ids[0] as string);
    expect(statements).toHaveBeenCalledTimes(2);
    expect(update).not.toHaveBeenCalled();
  } finally {
    statements.mockRestore();
    update.mockRestore();
  }
  const rows = await handle.db.select().from(orders).where(inArray(orders.id, ids));
  expect(rows.map((r) => r.status)).toEqual(["placed", "placed", "placed"]);
});

it("builds the order INSERT once per database handle, not per order", async () => {
  await newOrder(`p-0-${Date.now()}`);
  const insert = vi.spyOn(handle.db, "insert");
  try {
    const [a, b] = [await newOrder(`p-1-${Date.now()}`), await newOrder(`p-2-${Date.now()}`)];
    expect(insert).not.toHaveBeenCalled();
    expect([a.created, b.created]).toEqual([true, true]);
    expect(a.order.id).not.toBe(b.order.id);
    expect(a.order.status).toBe("pending_publish");
  } finally {
    insert.mockRestore();
  }
});

it("the INSERT reads back only the ids it stored; a new order is answered from the row it was built as", async () => {
  const statements = vi.spyOn(handle.db._.session, "prepareQuery");
  let placed: Awaited<ReturnType<typeof newOrder>>;
  try {
    placed = await newOrder(`n-${Date.now()}`);
    const insert = statements.mock.calls
      .map(([query]) => query.sql)
      .find((text) => /^insert into "orders"/.test(text));
    expect(insert).toMatch(/returning "id"$/);
  } finally {
    statements.mockRestore();
  }
  expect(placed).toMatchObject({ created: true, order: { status: "pending_publish", request_hash: "h" } });
  expect(placed.order.created_event).toEqual({ order_id: placed.order.id });
  const [row] = await handle.db
    .select()
    .from(orders)
    .where(inArray(orders.id, [placed.order.id]));
  expect(row).toMatchObject({
    status: "pending_publish",
    request_hash: "h",
    created_event: placed.order.created_event,
  });
});

it("orders placed at the same time share one INSERT; a key used twice in the group gets one order", async () => {
  const run = Date.now();
  const earlier = await newOrder(`g-0-${run}`);
  const select = vi.spyOn(handle.db, "select");
  try {
    const keys = [`g-1-${run}`, `g-2-${run}`, `g-1-${run}`, undefined, `g-0-${run}`];
    const placed = await Promise.all(keys.map((k) => newOrder(k)));
    // One lookup for the keys already taken, however many.
    expect(select).toHaveBeenCalledTimes(1);
    expect(placed.map((p) => p.created)).toEqual([true, true, false, true, false]);
    expect(placed[2]?.order.id).toBe(placed[0]?.order.id);
    expect(placed[4]?.order.id).toBe(earlier.order.id);
    // An order found by its key is read from the database, with what POST /orders compares and publishes.
    expect(placed[4]?.order).toMatchObject({
      request_hash: "h",
      created_event: { order_id: earlier.order.id },
    });
    expect(new Set(placed.map((p) => p.order.id)).size).toBe(4);
    const stored = await handle.db
      .select()
      .from(orders)
      .where(
        inArray(
          orders.id,
          placed.map((p) => p.order.id),
        ),
      );
    expect(stored).toHaveLength(4);
    // One statement: every new row has its transaction's now() as created_at.
    const fresh = stored.filter((o) => o.id !== earlier.order.id);
    expect(new Set(fresh.map((o) => o.created_at.getTime())).size).toBe(1);
    for (const p of placed) {
      const row = stored.find((o) => o.id === p.order.id);
      expect(row?.status).toBe("pending_publish");
      // The outbox event names the order it belongs to.
      expect(row?.created_event).toEqual({ order_id: p.order.id });
    }
  } finally {
    select.mockRestore();
  }
});

it("an order the database refuses fails alone, not with the orders placed beside it", async () => {
  const run = Date.now();
  const refused = insertOrder(handle.db, {
    request: {
      customer_id: "cus_1",
      items: [{ sku: "sku-1", quantity: 1, unit_price_minor: 100 }],
      // Past the column's varchar(3): the whole group's statement fails on it.
      currency: "EURO",
      payment_token: "tok_visa",
    },
    total_minor: 100,
    request_hash: "h",
    idempotency_key: `r-0-${run}`,
    event: (order_id) => ({ order_id }),
  });
  const [bad, ...good] = await Promise.allSettled([refused, newOrder(`r-1-${run}`), newOrder(`r-2-${run}`)]);
  expect(bad?.status).toBe("rejected");
  // The database's own refusal (drizzle wraps it as the cause).
  expect(String(((bad as PromiseRejectedResult).reason as Error).cause)).toMatch(/too long/);
  expect(good.map((g) => g.status)).toEqual(["fulfilled", "fulfilled"]);
  const ids = good.map((g) => (g as PromiseFulfilledResult<{ order: { id: string } }>).value.order.id);
  expect(await handle.db.select().from(orders).where(inArray(orders.id, ids))).toHaveLength(2);
});
