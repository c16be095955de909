import { asc, getTableColumns } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { anyOf, anyOfAt, asText, insertMissing, rowsOfPlaceholders, valueByKeyAt } from "./arrays.ts";
import type { DbHandle } from "./client.ts";
import { migrate } from "./migrate.ts";
import { openPglite } from "./pglite.ts";
import { reusable } from "./prepared.ts";
import { orders } from "./schema.ts";
import { createTestDb } from "./testing.ts";

const order = (id: string, extra: Partial<typeof orders.$inferInsert> = {}) => ({
  id,
  customer_id: `cus_${id}`,
  items: [{ sku: "sku-1", quantity: 2, unit_price_minor: 1_250 }],
  total_minor: 9_007_199_254_740_991,
  currency: "EUR",
  status: "pending_publish" as const,
  idempotency_key: id === "b" ? null : `key-${id}`,
  request_hash: `hash "${id}", {with} \\ quotes`,
  created_event: { order_id: id, nested: { list: [1, "two", null] } },
  ...extra,
});

/** drizzle wraps the driver's error: the database's own message is the cause's. */
const refusedAsTooLong = (error: unknown) => /too long/.test(String((error as Error).cause));
const COLUMNS = Object.keys(order("x")) as (keyof typeof orders.$inferInsert)[];

/** The statements under test, built once for every handle and transaction below. */
const insertOrders = insertMissing("test_insert_orders", orders, COLUMNS);
let builds = 0;
/** Each order listed in `keys` gets its own status and payment id from the arrays at the same position. */
const setByKey = reusable<typeof orders.$inferSelect>(
  "test_set_by_key",
  (db) => {
    builds++;
    return db
      .update(orders)
      .set({
        status: valueByKeyAt(orders.id, orders.status, "keys", "statuses"),
        payment_id: valueByKeyAt(orders.id, orders.payment_id, "keys", "payment_ids"),
      })
      .where(anyOfAt(orders.id, "keys"))
      .returning();
  },
  getTableColumns(orders),
);
const setCurrency = reusable("test_set_currency", (db) =>
  db
    .update(orders)
    .set({ currency: valueByKeyAt(orders.id, orders.currency, "keys", "currencies") })
    .where(anyOfAt(orders.id, "keys")),
);
const changes = (list: { id: string; status: string; payment_id: string | null }[]) => ({
  keys: asText(
    orders.id,
    list.map((c) => c.id),
  ),
  statuses: asText(
    orders.status,
    list.map((c) => c.status),
  ),
  payment_ids: asText(
    orders.payment_id,
    list.map((c) => c.payment_id),
  ),
});

// The same statements on the server the tests use and on embedded PGlite: the drivers encode arrays apart.
describe.each([
  ["the test database", createTestDb],
  [
    "PGlite",
    async () => {
      const handle = await openPglite();
      await migrate(handle);
      return handle;
    },
  ],
])("array parameters on %s", (_name, open) => {
  let handle: DbHandle;
  beforeAll(async () => {
    handle = await open();
  });
  afterAll(async () => {
    await handle?.close();
  });

  it("inserts rows from arrays with every value and default intact, and skips conflicts", async () => {
    const { db } = handle;
    const rows = [order("a"), order("b"), order("c", { idempotency_key: "key-a" })];
    const inserted = await insertOrders(db, rows);
    expect(inserted.map((o) => o.id).sort()).toEqual(["a", "b"]);
    const [a] = await db
      .select()
      .from(orders)
      .where(anyOf(orders.id, ["a"]));
    expect(a).toMatchObject({ ...order("a"), payment_status: "pending", inventory_status: "pending" });
    expect(a?.created_at).toBeInstanceOf(Date);
    expect(a?.finalized_at).toBeNull();
    // The rows come back decoded as drizzle decodes them: dates, JSON, big integers, nulls.
    const b = inserted.find((o) => o.id === "b");
    expect(b).toMatchObject({ ...order("b"), payment_status: "pending" });
    expect(b?.created_at).toBeInstanceOf(Date);
    expect(b?.idempotency_key).toBeNull();
  });

  it("updates by array whatever the list's length, each row its own value, in transactions too", async () => {
    const { db } = handle;
    await insertOrders(db, [order("d"), order("e"), order("f")]);
    const updated = await setByKey(
      db,
      changes([
        { id: "d", status: "placed", payment_id: "pay_d" },
        { id: "f", status: "cancelled", payment_id: null },
      ]),
    );
    expect(updated.map((o) => [o.id, o.status, o.payment_id]).sort()).toEqual([
      ["d", "placed", "pay_d"],
      ["f", "cancelled", null],
    ]);
    const inTx = await db.transaction((tx) =>
      setByKey(tx, changes([{ id: "e", status: "confirmed", payment_id: "pay_e" }])),
    );
    expect(inTx.map((o) => [o.id, o.status])).toEqual([["e", "confirmed"]]);
    // A transaction that fails takes the statement's effect with it.
    await expect(
      db.transaction(async (tx) => {
        await setByKey(tx, changes([{ id: "d", status: "cancelled", payment_id: null }]));
        throw new Error("rolled back");
      }),
    ).rejects.toThrow("rolled back");
    const all = await db
      .select()
      .from(orders)
      .where(anyOf(orders.id, ["d", "e", "f", "nope"]))
      .orderBy(asc(orders.id));
    expect(all.map((o) => [o.status, o.payment_id])).toEqual([
      ["placed", "pay_d"],
      ["confirmed", "pay_e"],
      ["cancelled", null],
    ]);
    expect(await db.select().from(orders).where(anyOf(orders.id, []))).toEqual([]);
    // Built once, for the pool and every transaction of both drivers.
    expect(builds).toBe(1);
  });

  it("refuses a value too long for its column instead of cutting it short", async () => {
    const { db } = handle;
    await expect(insertOrders(db, [order("g", { currency: "EURO" })])).rejects.toSatisfy(refusedAsTooLong);
    await insertOrders(db, [order("h")]);
    await expect(
      setCurrency(db, { keys: asText(orders.id, ["h"]), currencies: asText(orders.currency, ["EURO"]) }),
    ).rejects.toSatisfy(refusedAsTooLong);
    // A longer value compared against the column matches nothing rather than its first three letters.
    expect(
      await db
        .select()
        .from(orders)
        .where(anyOf(orders.currency, ["EURO"])),
    ).toEqual([]);
  });

  it("refuses a required column that is neither listed nor defaulted", () => {
    expect(() => rowsOfPlaceholders(orders, ["id"])).toThrow(/customer_id has no default/);
  });
});
