import { asc, getTableColumns } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  anyOf,
  anyOfAt,
  asText,
  rowArrays,
  rowsOf,
  rowsOfPlaceholders,
  valueByKey,
  valueByKeyAt,
} from "./arrays.ts";
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

const byId = (c: { id: string }) => c.id;
/** drizzle wraps the driver's error: the database's own message is the cause's. */
const refusedAsTooLong = (error: unknown) => /too long/.test(String((error as Error).cause));
const COLUMNS = Object.keys(order("x")) as (keyof typeof orders.$inferInsert)[];

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
    const inserted = await db
      .insert(orders)
      .select(rowsOf(orders, COLUMNS, rows))
      .onConflictDoNothing()
      .returning();
    expect(inserted.map((o) => o.id).sort()).toEqual(["a", "b"]);
    const [a] = await db
      .select()
      .from(orders)
      .where(anyOf(orders.id, ["a"]));
    expect(a).toMatchObject({ ...order("a"), payment_status: "pending", inventory_status: "pending" });
    expect(a?.created_at).toBeInstanceOf(Date);
    expect(a?.finalized_at).toBeNull();
    const b = inserted.find((o) => o.id === "b");
    expect(b?.idempotency_key).toBeNull();
  });

  it("selects and updates by array whatever the list's length, each row its own value", async () => {
    const { db } = handle;
    const rows = [order("d"), order("e"), order("f")];
    await db.insert(orders).select(rowsOf(orders, COLUMNS, rows));
    const changes = [
      { id: "d", status: "placed", payment_id: "pay_d" },
      { id: "f", status: "cancelled", payment_id: null },
    ];
    const updated = await db
      .update(orders)
      .set({
        status: valueByKey(orders.id, orders.status, changes, byId, (c) => c.status),
        payment_id: valueByKey(orders.id, orders.payment_id, changes, byId, (c) => c.payment_id),
      })
      .where(anyOf(orders.id, ["d", "f"]))
      .returning();
    expect(updated.map((o) => [o.id, o.status, o.payment_id]).sort()).toEqual([
      ["d", "placed", "pay_d"],
      ["f", "cancelled", null],
    ]);
    const all = await db
      .select()
      .from(orders)
      .where(anyOf(orders.id, ["d", "e", "f", "nope"]))
      .orderBy(asc(orders.id));
    expect(all.map((o) => o.status)).toEqual(["placed", "pending_publish", "cancelled"]);
    expect(await db.select().from(orders).where(anyOf(orders.id, []))).toEqual([]);
  });

  it("refuses a value too long for its column instead of cutting it short", async () => {
    const { db } = handle;
    await expect(
      db.insert(orders).select(rowsOf(orders, COLUMNS, [order("g", { currency: "EURO" })])),
    ).rejects.toSatisfy(refusedAsTooLong);
    await db.insert(orders).select(rowsOf(orders, COLUMNS, [order("h")]));
    const set = valueByKey(orders.id, orders.currency, [{ id: "h" }], byId, () => "EURO");
    await expect(
      db
        .update(orders)
        .set({ currency: set })
        .where(anyOf(orders.id, ["h"])),
    ).rejects.toSatisfy(refusedAsTooLong);
    // A longer value compared against the column matches nothing rather than its first three letters.
    expect(
      await db
        .select()
        .from(orders)
        .where(anyOf(orders.currency, ["EURO"])),
    ).toEqual([]);
  });

  it("runs a statement built once on the handle and in transactions, rows decoded as drizzle decodes them", async () => {
    const { db } = handle;
    let builds = 0;
    const update = reusable<typeof orders.$inferSelect>(
      "test_update",
      (d) => {
        builds++;
        return d
          .update(orders)
          .set({ status: valueByKeyAt(orders.id, orders.status, "keys", "statuses") })
          .where(anyOfAt(orders.id, "ids"))
          .returning();
      },
      getTableColumns(orders),
    );
    const insert = reusable<{ id: string }>(
      "test_insert",
      (d) =>
        d
          .insert(orders)
          .select(rowsOfPlaceholders(orders, COLUMNS))
          .onConflictDoNothing()
          .returning({ id: orders.id }),
      { id: orders.id },
    );
    const rows = [order("i"), order("j"), order("k")];
    expect(await insert(db, rowArrays(orders, COLUMNS, rows))).toEqual([
      { id: "i" },
      { id: "j" },
      { id: "k" },
    ]);
    const set = (ids: string[], statuses: string[]) => ({
      ids: asText(orders.id, ids),
      keys: asText(orders.id, ids),
      statuses: asText(orders.status, statuses),
    });
    const [i] = await update(db, set(["i"], ["placed"]));
    expect(i).toMatchObject({ ...order("i"), status: "placed", finalized_at: null });
    expect(i?.created_at).toBeInstanceOf(Date);
    const inTx = await db.transaction((tx) => update(tx, set(["j", "k"], ["cancelled", "confirmed"])));
    expect(inTx.map((o) => [o.id, o.status]).sort()).toEqual([
      ["j", "cancelled"],
      ["k", "confirmed"],
    ]);
    // A transaction that fails takes the statement's effect with it.
    await expect(
      db.transaction(async (tx) => {
        await update(tx, set(["i"], ["cancelled"]));
        throw new Error("rolled back");
      }),
    ).rejects.toThrow("rolled back");
    const after = await db
      .select()
      .from(orders)
      .where(anyOf(orders.id, ["i"]));
    expect(after[0]?.status).toBe("placed");
    expect(builds).toBe(1);
  });

  it("refuses a required column that is neither listed nor defaulted", () => {
    expect(() => rowsOf(orders, ["id"], [{ id: "x" }])).toThrow(/customer_id has no default/);
  });
});
