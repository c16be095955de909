import { eq } from "drizzle-orm";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreated, PaymentFailed } from "../../schemas/index.ts";
import type { DbHandle } from "../db/client.ts";
import { createDb, migrate } from "../db/index.ts";
import { reservations, stock } from "../db/schema.ts";
import { createTestDb } from "../db/testing.ts";
import { batchEvent, invoke, invokeBatch } from "../sdk/testing.ts";
import { createInventory } from "./app.ts";
import { mergeItems, reserve, reserveMany, seedStock } from "./stock.ts";

let handle: DbHandle;
let inventory: ReturnType<typeof createInventory>;
const env = { JETWAY_LOG_LEVEL: "silent" };

beforeAll(async () => {
  handle = await createTestDb();
  inventory = createInventory({ db: () => handle.db });
});
afterAll(async () => {
  await handle.close();
});

interface EventsBody {
  events: { subject: string; id?: string; data: Record<string, unknown> }[];
}

function order(items: { sku: string; quantity: number }[]) {
  return {
    message_id: ulid(),
    occurred_at: new Date().toISOString(),
    order_id: `ord_${ulid()}`,
    customer_id: "cus_1",
    items: items.map((i) => ({ ...i, unit_price_minor: 100 })),
    total_minor: 100,
    currency: "EUR",
    payment_token: "tok_visa",
  };
}

const created = async (data: ReturnType<typeof order>) => {
  const res = await invoke(inventory.app, OrderCreated, data, { id: data.message_id, env });
  expect(res.status).toBe(200);
  return (await res.json()) as EventsBody;
};

const paymentFailed = async (orderId: string) => {
  const data = {
    message_id: ulid(),
    occurred_at: new Date().toISOString(),
    order_id: orderId,
    reason: "card_declined",
    amount_minor: 100,
    currency: "EUR",
  };
  const res = await invoke(inventory.app, PaymentFailed, data, { id: data.message_id, env });
  expect(res.status).toBe(200);
  return (await res.json()) as EventsBody;
};

const available = async (sku: string) =>
  (await handle.db.select().from(stock).where(eq(stock.sku, sku)))[0]?.available;

describe("inventory", () => {
  it("50 concurrent orders for 10 units reserve exactly 10 and never oversell", async () => {
    await seedStock(handle.db, { "hot-1": 10 });
    const results = await Promise.all(
      Array.from({ length: 50 }, () => created(order([{ sku: "hot-1", quantity: 1 }]))),
    );
    const subjects = results.map((r) => r.events[0]?.subject);
    expect(subjects.filter((s) => s === "inventory.reserved.v1")).toHaveLength(10);
    expect(subjects.filter((s) => s === "inventory.rejected.v1")).toHaveLength(40);
    expect(await available("hot-1")).toBe(0);
    const held = await handle.db.select().from(reservations).where(eq(reservations.status, "reserved"));
    expect(held.filter((r) => r.items[0]?.sku === "hot-1")).toHaveLength(10);
  });

  it("is all-or-nothing across SKUs and names the short ones", async () => {
    await seedStock(handle.db, { "a-1": 5, "b-1": 1 });
    const body = await created(
      order([
        { sku: "a-1", quantity: 2 },
        { sku: "b-1", quantity: 3 },
      ]),
    );
    expect(body.events[0]).toMatchObject({
      subject: "inventory.rejected.v1",
      data: { reason: "out_of_stock", skus: ["b-1"] },
    });
    expect(await available("a-1")).toBe(5);
    const unknown = await created(
      order([
        { sku: "a-1", quantity: 1 },
        { sku: "nope", quantity: 1 },
      ]),
    );
    expect(unknown.events[0]?.data).toMatchObject({ reason: "unknown_sku", skus: ["nope"] });
    expect(await available("a-1")).toBe(5);
  });

  it("a redelivered order re-emits the same event and reserves nothing more", async () => {
    await seedStock(handle.db, { "c-1": 10 });
    const data = order([
      { sku: "c-1", quantity: 2 },
      { sku: "c-1", quantity: 1 },
    ]);
    const first = await created(data);
    expect(first.events[0]).toMatchObject({
      subject: "inventory.reserved.v1",
      id: `inventory:${data.order_id}`,
      data: { items: [{ sku: "c-1", quantity: 3 }] },
    });
    expect(await created(data)).toEqual(first);
    expect(await available("c-1")).toBe(7);
  });

  it("releases on payments.failed exactly once, however often it arrives", async () => {
    await seedStock(handle.db, { "d-1": 4 });
    const data = order([{ sku: "d-1", quantity: 3 }]);
    await created(data);
    expect(await available("d-1")).toBe(1);
    const releases = await Promise.all([paymentFailed(data.order_id), paymentFailed(data.order_id)]);
    releases.push(await paymentFailed(data.order_id));
    expect(await available("d-1")).toBe(4);
    for (const r of releases) {
      expect(r.events).toEqual([
        expect.objectContaining({
          subject: "inventory.released.v1",
          id: `inventory-released:${data.order_id}`,
        }),
      ]);
    }
    expect(new Set(releases.map((r) => JSON.stringify(r))).size).toBe(1);
  });

  it("a release that overtakes its reservation leaves a tombstone; the late reservation announces the release", async () => {
    await seedStock(handle.db, { "e-1": 4 });
    const data = order([
      { sku: "e-1", quantity: 1 },
      { sku: "e-1", quantity: 1 },
    ]);
    expect((await paymentFailed(data.order_id)).events).toEqual([]);
    const late = await created(data);
    expect(late.events).toEqual([
      {
        subject: "inventory.released.v1",
        id: `inventory-released:${data.order_id}`,
        data: expect.objectContaining({
          order_id: data.order_id,
          items: [{ sku: "e-1", quantity: 2 }],
          reason: "payment_failed",
        }),
      },
    ]);
    expect(await available("e-1")).toBe(4);
    // Redelivered, either message changes nothing: the same announcement, nothing held or given back.
    expect(await created(data)).toEqual(late);
    expect((await paymentFailed(data.order_id)).events).toEqual([]);
    expect(await available("e-1")).toBe(4);
  });

  it("dead-letters an order whose quantities of one SKU add up past 2^53, alone, at once", async () => {
    await seedStock(handle.db, { "u-1": 10 });
    const huge = order([
      { sku: "u-1", quantity: Number.MAX_SAFE_INTEGER },
      { sku: "u-1", quantity: 1 },
    ]);
    const healthy = order([{ sku: "u-1", quantity: 1 }]);
    // Released first, the late reservation would announce the sum: no event can carry it.
    await paymentFailed(huge.order_id);
    const res = await invokeBatch(
      inventory.app,
      [batchEvent("h", OrderCreated, huge), batchEvent("ok", OrderCreated, healthy)],
      { env },
    );
    const body = (await res.json()) as { failures: unknown[]; events: Record<string, unknown[]> };
    expect(body.failures).toEqual([
      { id: "h", reason: "items: the quantities of u-1 add up past 2^53", dead_letter: true },
    ]);
    expect(body.events.ok).toHaveLength(1);
    expect(await available("u-1")).toBe(9);
  });

  it("a release racing its reservation announces one release per order, and the stock ends whole", async () => {
    const sku = `r-${ulid()}`;
    await seedStock(handle.db, { [sku]: 20 });
    const orders = Array.from({ length: 10 }, () => order([{ sku, quantity: 2 }]));
    // Two replicas deliver each message: both sides of every order race, twice over.
    const bodies = await Promise.all(
      orders.flatMap((o) => [created(o), paymentFailed(o.order_id), created(o), paymentFailed(o.order_id)]),
    );
    const released = bodies.flatMap((b) => b.events).filter((e) => e.subject === "inventory.released.v1");
    for (const o of orders) {
      const announced = released.filter((e) => e.data.order_id === o.order_id).map((e) => JSON.stringify(e));
      expect(announced.length).toBeGreaterThan(0);
      expect(new Set(announced).size).toBe(1);
    }
    expect(await available(sku)).toBe(20);
  });

  it("orders locking SKUs in opposite orders do not deadlock", async () => {
    await seedStock(handle.db, { "x-1": 100, "y-1": 100 });
    const orders = Array.from({ length: 20 }, (_, i) =>
      order(
        i % 2
          ? [
              { sku: "x-1", quantity: 1 },
              { sku: "y-1", quantity: 1 },
            ]
          : [
              { sku: "y-1", quantity: 1 },
              { sku: "x-1", quantity: 1 },
            ],
      ),
    );
    await Promise.all(orders.map(created));
    expect(await available("x-1")).toBe(80);
    expect(await available("y-1")).toBe(80);
  });

  it("mergeItems sums per SKU in a stable order", () => {
    expect(
      mergeItems([
        { sku: "b", quantity: 1 },
        { sku: "a", quantity: 2 },
        { sku: "b", quantity: 3 },
      ]),
    ).toEqual([
      { sku: "a", quantity: 2 },
      { sku: "b", quantity: 4 },
    ]);
  });

  it("GET /stock/:sku reads a level", async () => {
    await seedStock(handle.db, { "g-1": 3 });
    expect(await (await inventory.app.request("/stock/g-1")).json()).toEqual({ sku: "g-1", available: 3 });
    expect((await inventory.app.request("/stock/none")).status).toBe(404);
  });
});

describe("inventory, a batch of orders at once", () => {
  it("decides in delivery order under one transaction and answers per message", async () => {
    const sku = `b-${ulid()}`;
    const other = `b-${ulid()}`;
    await seedStock(handle.db, { [sku]: 3, [other]: 10 });
    const first = order([{ sku, quantity: 2 }]);
    const second = order([
      { sku, quantity: 2 },
      { sku: other, quantity: 1 },
    ]); // only 1 of sku left
    const third = order([{ sku, quantity: 1 }]);
    const unknown = order([{ sku: `none-${ulid()}`, quantity: 1 }]);
    const all = [first, second, third, unknown];
    const deliver = async () => {
      const res = await invokeBatch(
        inventory.app,
        all.map((o) => batchEvent(o.message_id, OrderCreated, o)),
        { env },
      );
      expect(res.status).toBe(200);
      return (await res.json()) as { failures: unknown[]; events: Record<string, EventsBody["events"]> };
    };
    const body = await deliver();
    expect(body.failures).toEqual([]);
    const outcome = (o: ReturnType<typeof order>) =>
      body.events[o.message_id]?.map((e) => [e.subject, e.data.reason, e.data.skus]);
    expect(outcome(first)).toEqual([["inventory.reserved.v1", undefined, undefined]]);
    expect(outcome(second)).toEqual([["inventory.rejected.v1", "out_of_stock", [sku]]]);
    expect(outcome(third)).toEqual([["inventory.reserved.v1", undefined, undefined]]);
    expect(outcome(unknown)?.[0]?.[1]).toBe("unknown_sku");
    const level = async (s: string) =>
      (await handle.db.select().from(stock).where(eq(stock.sku, s)))[0]?.available;
    expect([await level(sku), await level(other)]).toEqual([0, 10]);
    // The same batch redelivered: the same events, no stock taken twice.
    expect((await deliver()).events).toEqual(body.events);
    expect([await level(sku), await level(other)]).toEqual([0, 10]);
  });
});

describe("inventory, overlapping batches at once", () => {
  it("two replicas' batches of the same orders in opposite orders reserve each order once", async () => {
    const sku = `o-${ulid()}`;
    await seedStock(handle.db, { [sku]: 100 });
    const requests = Array.from({ length: 20 }, () => ({
      order_id: `ord_${ulid()}`,
      items: [{ sku, quantity: 1 }],
    }));
    const [forward, backward] = await Promise.all([
      reserveMany(handle.db, requests),
      reserveMany(handle.db, [...requests].reverse()),
    ]);
    expect(forward.map((r) => r.status)).toEqual(requests.map(() => "reserved"));
    expect(backward.map((r) => r.id)).toEqual(forward.map((r) => r.id).reverse());
    const [row] = await handle.db.select().from(stock).where(eq(stock.sku, sku));
    expect(row?.available).toBe(80);
  });
});

describe("inventory on embedded PGlite (dev mode)", () => {
  it("serialises concurrent reservations just the same", async () => {
    const embedded = await createDb({ PGLITE_DIR: "memory" });
    try {
      await migrate(embedded);
      await seedStock(embedded.db, { a: 5, b: 5 });
      const results = await Promise.all(
        Array.from({ length: 15 }, (_, i) =>
          reserve(embedded.db, `ord_${i}`, [
            { sku: "a", quantity: 1 },
            { sku: "b", quantity: 1 },
          ]),
        ),
      );
      expect(results.filter((r) => r.status === "reserved")).toHaveLength(5);
      const levels = await embedded.db.select().from(stock);
      expect(levels.map((l) => l.available)).toEqual([0, 0]);
    } finally {
      await embedded.close();
    }
  });
});
