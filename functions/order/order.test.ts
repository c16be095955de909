import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { inArray, sql } from "drizzle-orm";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHttpServer } from "../../bridge/http.ts";
import { NatsServer } from "../../bridge/nats-server.ts";
import { startIngress } from "../../bridge/testing/ingress.ts";
import {
  InventoryReleased,
  InventoryReserved,
  OrderCreated,
  PaymentCompleted,
  PaymentFailed,
} from "../../schemas/index.ts";
import type { DbHandle } from "../db/client.ts";
import { orders, processedMessages } from "../db/schema.ts";
import { createTestDb } from "../db/testing.ts";
import { batchEvent, invoke, invokeBatch } from "../sdk/testing.ts";
import { createOrder } from "./app.ts";
import {
  HousekeepingError,
  type HousekeepingTask,
  housekeepingTaskOf,
  runHousekeeping,
} from "./housekeeping.ts";

const STREAM = `ORDERS_${ulid()}`;
let nats: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let ingress: RunningHttpServer;
let handle: DbHandle;
let order: ReturnType<typeof createOrder>;
let env: Record<string, string>;
const DOWN = { JETWAY_PUBLISH_URL: "http://127.0.0.1:9", JETWAY_LOG_LEVEL: "silent" };

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: ["orders.>"] });
  // The real bridge ingress, so the publish contract is tested end to end.
  ingress = await startIngress(nc);
  env = { JETWAY_PUBLISH_URL: `http://127.0.0.1:${ingress.port}`, JETWAY_LOG_LEVEL: "silent" };
  handle = await createTestDb();
  order = createOrder({ db: () => handle.db });
});

afterAll(async () => {
  await ingress?.close();
  await nc?.close();
  await nats?.stop();
  await handle?.close();
});

const body = (overrides: Record<string, unknown> = {}) => ({
  customer_id: "cus_1",
  items: [
    { sku: "sku-1", quantity: 2, unit_price_minor: 1250 },
    { sku: "sku-2", quantity: 1, unit_price_minor: 500 },
  ],
  currency: "EUR",
  payment_token: "tok_visa",
  ...overrides,
});

const post = (payload: unknown, key?: string, vars = env) =>
  order.app.request(
    "/orders",
    {
      method: "POST",
      headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
      body: typeof payload === "string" ? payload : JSON.stringify(payload),
    },
    vars,
  );

const getOrder = async (id: string) => (await order.app.request(`/orders/${id}`, {}, env)).json();

/** Every orders.created message in the stream for one order. */
async function published(orderId: string) {
  const info = await jsm.streams.info(STREAM);
  const found = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const msg = await jsm.streams.getMessage(STREAM, { seq }).catch(() => null);
    const data = msg?.json<{ order_id: string }>();
    if (msg && data?.order_id === orderId)
      found.push({ data: msg.json(), msgId: msg.header.get("Nats-Msg-Id") });
  }
  return found;
}

describe("POST /orders", () => {
  it("stores the order, publishes orders.created.v1 through the ingress, answers 202", async () => {
    const res = await post(body(), `key-${ulid()}`);
    expect(res.status).toBe(202);
    const { order_id, status } = (await res.json()) as { order_id: string; status: string };
    expect(status).toBe("placed");
    expect(await getOrder(order_id)).toMatchObject({
      order_id,
      status: "placed",
      payment_status: "pending",
      inventory_status: "pending",
      total_minor: 3000,
    });
    const messages = await published(order_id);
    expect(messages).toHaveLength(1);
    const event = OrderCreated.schema.parse(messages[0]?.data);
    expect(event).toMatchObject({ order_id, total_minor: 3000, currency: "EUR", payment_token: "tok_visa" });
    expect(messages[0]?.msgId).toBe(event.message_id);
  });

  it("the same Idempotency-Key gives the same order and response, concurrently too, one event", async () => {
    const key = `key-${ulid()}`;
    const responses = await Promise.all(Array.from({ length: 10 }, () => post(body(), key)));
    const bodies = await Promise.all(responses.map((r) => r.json()));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(202));
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
    const again = await post(body(), key);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await again.json()).toEqual(bodies[0]);
    expect(await published((bodies[0] as { order_id: string }).order_id)).toHaveLength(1);
  });

  it("refuses a reused Idempotency-Key with a different order", async () => {
    const key = `key-${ulid()}`;
    expect((await post(body(), key)).status).toBe(202);
    const res = await post(body({ currency: "USD" }), key);
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ error: { code: "idempotency_key_reused" } });
  });

  it("names every invalid field", async () => {
    const res = await post({
      items: [{ sku: "sku-1", quantity: 0, unit_price_minor: 100 }],
      currency: "eur",
      payment_token: "tok_visa",
    });
    expect(res.status).toBe(422);
    const { error } = (await res.json()) as { error: { fields: { path: string }[]; message: string } };
    expect(error.fields.map((f) => f.path).sort()).toEqual(["currency", "customer_id", "items.0.quantity"]);
    expect(error.message).toContain("items.0.quantity");
    expect((await post("{not json")).status).toBe(400);
    expect((await post([1, 2])).status).toBe(400);
    expect((await post(body({ extra: true }))).status).toBe(422);
  });

  it("refuses quantities of one SKU that add up past 2^53, though each is valid", async () => {
    const huge = { sku: "sku-1", quantity: Number.MAX_SAFE_INTEGER, unit_price_minor: 0 };
    const res = await post(body({ items: [huge, { sku: "sku-1", quantity: 1, unit_price_minor: 100 }] }));
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({
      error: { fields: [{ path: "items", message: "the quantities of sku-1 add up past 2^53" }] },
    });
  });

  it("refuses an order totalling 0: a card gateway charges nothing", async () => {
    const res = await post(body({ items: [{ sku: "sku-1", quantity: 3, unit_price_minor: 0 }] }));
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({
      error: { fields: [{ path: "items", message: "order total must be above 0" }] },
    });
  });

  it("keeps the order as pending_publish when the ingress is down; a retry publishes the same event once", async () => {
    const key = `key-${ulid()}`;
    const down = await post(body(), key, DOWN);
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("2");
    const { order_id } = (await down.json()) as { order_id: string };
    expect(await getOrder(order_id)).toMatchObject({ status: "pending_publish" });
    expect(await published(order_id)).toHaveLength(0);
    const retried = await post(body(), key);
    expect(retried.status).toBe(202);
    expect(await retried.json()).toEqual({ order_id, status: "placed" });
    expect((await post(body(), key)).status).toBe(202);
    expect(await published(order_id)).toHaveLength(1);
  });

  it("orders placed together share ingress requests; an event the stream refuses leaves only its order pending", async () => {
    const sizes: number[] = [];
    const counting: typeof fetch = (input, init) => {
      sizes.push((JSON.parse(String(init?.body)) as { events: unknown[] }).events.length);
      return fetch(input, init);
    };
    const grouped = createOrder({ db: () => handle.db, fetch: counting });
    // Past max_msg_size JetStream refuses that one event; the ingress answers 207 for its request.
    await jsm.streams.update(STREAM, { subjects: ["orders.>"], max_msg_size: 2_000 });
    try {
      const items = Array.from({ length: 40 }, (_, i) => ({
        sku: `sku-${i}`,
        quantity: 1,
        unit_price_minor: 10,
      }));
      const payloads = [body(), body(), body({ items }), body(), body(), body()];
      const responses = await Promise.all(
        payloads.map((p) =>
          grouped.app.request(
            "/orders",
            { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(p) },
            env,
          ),
        ),
      );
      expect(responses.map((r) => r.status)).toEqual([202, 202, 503, 202, 202, 202]);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(6);
      expect(sizes.length).toBeLessThan(6);
      const ids = await Promise.all(
        responses.map(async (r) => ((await r.json()) as { order_id: string }).order_id),
      );
      const refused = ids[2] as string;
      expect(await getOrder(refused)).toMatchObject({ status: "pending_publish" });
      expect(await published(refused)).toHaveLength(0);
      for (const id of ids.filter((id) => id !== refused)) {
        expect(await getOrder(id)).toMatchObject({ status: "placed" });
        expect(await published(id)).toHaveLength(1);
      }
    } finally {
      await jsm.streams.update(STREAM, { subjects: ["orders.>"], max_msg_size: -1 });
    }
  });

  it("the outbox flush publishes orders whose client never retried", async () => {
    const down = await post(body(), `key-${ulid()}`, DOWN);
    const { order_id } = (await down.json()) as { order_id: string };
    const flush = await order.app.request("/orders/outbox/flush?older_than_s=0", { method: "POST" }, env);
    expect(flush.status).toBe(200);
    expect(await getOrder(order_id)).toMatchObject({ status: "placed" });
    expect(await published(order_id)).toHaveLength(1);
  });
});

describe("housekeeping", () => {
  const viaApp = (vars: Record<string, string>) => (request: Request) => order.app.fetch(request, vars);

  it("the outbox-flush task publishes an order its client gave up on", async () => {
    const down = await post(body(), `key-${ulid()}`, DOWN);
    const { order_id } = (await down.json()) as { order_id: string };
    // The flush leaves orders younger than 10 s to their own request.
    await handle.db.execute(
      sql`update orders set created_at = now() - interval '1 minute' where id = ${order_id}`,
    );
    const run = await runHousekeeping("outbox-flush", viaApp(env), env);
    expect(run.calls).toHaveLength(1);
    expect(run.calls[0]?.published).toBeGreaterThanOrEqual(1);
    expect(await getOrder(order_id)).toMatchObject({ status: "placed" });
    expect(await published(order_id)).toHaveLength(1);
  });

  it("the processed-prune task sends the admin token and JETWAY_PRUNE_OLDER_THAN_S, and fails on a refusal", async () => {
    const message_id = ulid();
    await handle.db
      .insert(processedMessages)
      .values({ consumer: "order", message_id, processed_at: new Date(Date.now() - 2 * 3_600_000) });
    const ours = inArray(processedMessages.message_id, [message_id]);
    const vars = { ...env, JETWAY_ADMIN_TOKEN: "adm", JETWAY_PRUNE_OLDER_THAN_S: "3600" };
    // Two hours old: kept by the 7-day default, forgotten with an hour.
    await runHousekeeping("processed-prune", viaApp(vars), { ...vars, JETWAY_PRUNE_OLDER_THAN_S: "" });
    expect(await handle.db.select().from(processedMessages).where(ours)).toHaveLength(1);
    await expect(
      runHousekeeping("processed-prune", viaApp(vars), { ...vars, JETWAY_ADMIN_TOKEN: "x" }),
    ).rejects.toThrow(/processed-prune: 401/);
    await expect(
      runHousekeeping("processed-prune", viaApp(vars), { ...vars, JETWAY_PRUNE_OLDER_THAN_S: "60" }),
    ).rejects.toThrow(/400 .*older_than_s.*\(JETWAY_PRUNE_OLDER_THAN_S=60\)/);
    const run = await runHousekeeping("processed-prune", viaApp(vars), vars);
    expect(run.calls).toEqual([expect.objectContaining({ more: false })]);
    expect(await handle.db.select().from(processedMessages).where(ours)).toEqual([]);
  });

  it("the prune calls again while the answer says more, at most 10 times a run", async () => {
    const callsUntil = async (task: HousekeepingTask, more: (n: number) => boolean) => {
      let n = 0;
      const answer = () => Response.json({ deleted: 5, more: more(++n) });
      return (await runHousekeeping(task, answer, {})).calls.length;
    };
    expect(await callsUntil("processed-prune", (n) => n < 3)).toBe(3);
    expect(await callsUntil("processed-prune", () => true)).toBe(10);
    expect(await callsUntil("outbox-flush", () => true)).toBe(1);
  });

  it("an event names its task; an HTTP event names none, an unknown task is an error", () => {
    expect(housekeepingTaskOf({ jetway_housekeeping: "outbox-flush" })).toBe("outbox-flush");
    expect(housekeepingTaskOf({ version: "2.0", rawPath: "/orders" })).toBeUndefined();
    expect(() => housekeepingTaskOf({ jetway_housekeeping: "vacuum" })).toThrow(HousekeepingError);
    expect(() => housekeepingTaskOf({ jetway_housekeeping: "vacuum" })).toThrow(
      /outbox-flush, processed-prune/,
    );
  });
});

describe("status from events", () => {
  const place = async () => {
    const res = await post(body(), `key-${ulid()}`);
    return ((await res.json()) as { order_id: string }).order_id;
  };
  const now = () => new Date().toISOString();
  const deliver = async (type: Parameters<typeof invoke>[1], data: Record<string, unknown>) => {
    const res = await invoke(order.app, type, { message_id: ulid(), occurred_at: now(), ...data } as never, {
      env,
    });
    return res;
  };
  type Events = { events: { subject: string; id: string; data: Record<string, unknown> }[] };

  it("paid + reserved → confirmed, announced once per message and identically on redelivery", async () => {
    const order_id = await place();
    const paid = await deliver(PaymentCompleted, {
      order_id,
      payment_id: "pay_1",
      amount_minor: 3000,
      currency: "EUR",
      gateway_charge_id: "ch_1",
    });
    expect(((await paid.json()) as Events).events).toEqual([]);
    expect(await getOrder(order_id)).toMatchObject({ status: "placed", payment_status: "paid" });
    const reservedData = {
      message_id: ulid(),
      occurred_at: now(),
      order_id,
      reservation_id: "res_1",
      items: [{ sku: "sku-1", quantity: 2 }],
    };
    const first = (await (
      await invoke(order.app, InventoryReserved, reservedData, { env })
    ).json()) as Events;
    expect(first.events).toEqual([
      expect.objectContaining({
        subject: "orders.confirmed.v1",
        id: `orders-final:${order_id}`,
        data: expect.objectContaining({ order_id, payment_id: "pay_1", reservation_id: "res_1" }),
      }),
    ]);
    const redelivered = (await (
      await invoke(order.app, InventoryReserved, reservedData, { env })
    ).json()) as Events;
    expect(redelivered).toEqual(first);
    expect(await getOrder(order_id)).toMatchObject({
      status: "confirmed",
      payment_status: "paid",
      inventory_status: "reserved",
    });
  });

  it("payment failed → cancelled with a reason; the later release keeps it cancelled", async () => {
    const order_id = await place();
    const failed = await deliver(PaymentFailed, {
      order_id,
      reason: "card_declined",
      amount_minor: 3000,
      currency: "EUR",
    });
    expect(((await failed.json()) as Events).events[0]).toMatchObject({
      subject: "orders.cancelled.v1",
      data: { order_id, reason: "payment_card_declined" },
    });
    const released = await deliver(InventoryReleased, {
      order_id,
      reservation_id: "res_2",
      items: [{ sku: "sku-1", quantity: 2 }],
      reason: "payment_failed",
    });
    expect(((await released.json()) as Events).events).toEqual([]);
    expect(await getOrder(order_id)).toMatchObject({
      status: "cancelled",
      payment_status: "failed",
      inventory_status: "released",
      cancel_reason: "payment_card_declined",
    });
  });

  it("an event for an unknown order is dead-lettered (4xx)", async () => {
    const res = await deliver(PaymentFailed, {
      order_id: "ord_missing",
      reason: "card_declined",
      amount_minor: 1,
      currency: "EUR",
    });
    expect(res.status).toBe(422);
  });

  it("a batch folds several events per order in order and refuses only the unknown order", async () => {
    const [a, b, c, d] = [await place(), await place(), await place(), await place()];
    const item = (type: Parameters<typeof batchEvent>[1], data: Record<string, unknown>) => {
      const message_id = ulid();
      return batchEvent(message_id, type, { message_id, occurred_at: now(), ...data });
    };
    const reserved = (order_id: string, reservation_id: string, sku = "sku-1", quantity = 2) =>
      item(InventoryReserved, { order_id, reservation_id, items: [{ sku, quantity }] });
    const inventory = [
      reserved(a, "res_a"),
      reserved("ord_missing", "res_x", "s", 1),
      reserved(b, "res_b"),
      item(InventoryReleased, {
        order_id: b,
        reservation_id: "res_b",
        items: [{ sku: "sku-1", quantity: 2 }],
        reason: "payment_failed",
      }),
    ];
    const res = await invokeBatch(order.app, inventory, { env });
    const answer = (await res.json()) as {
      failures: { id: string; dead_letter?: boolean }[];
      events: object;
    };
    expect(answer.failures).toEqual([expect.objectContaining({ id: inventory[1]?.id, dead_letter: true })]);
    expect(answer.events).toEqual({});
    expect(await getOrder(a)).toMatchObject({ status: "placed", inventory_status: "reserved" });
    expect(await getOrder(b)).toMatchObject({ status: "placed", inventory_status: "released" });
    const payments = [
      item(PaymentCompleted, {
        order_id: a,
        payment_id: "pay_a",
        amount_minor: 3000,
        currency: "EUR",
        gateway_charge_id: "ch_a",
      }),
      item(PaymentFailed, { order_id: b, reason: "card_declined", amount_minor: 3000, currency: "EUR" }),
      item(PaymentFailed, { order_id: d, reason: "card_declined", amount_minor: 3000, currency: "EUR" }),
      // Changed in the same statement, but not final: its finalized_at must stay empty.
      item(PaymentCompleted, {
        order_id: c,
        payment_id: "pay_c",
        amount_minor: 3000,
        currency: "EUR",
        gateway_charge_id: "ch_c",
      }),
    ];
    const paid = (await (await invokeBatch(order.app, payments, { env })).json()) as {
      events: Record<string, { subject: string }[]>;
    };
    expect(paid.events[String(payments[0]?.id)]?.map((e) => e.subject)).toEqual(["orders.confirmed.v1"]);
    expect(paid.events[String(payments[1]?.id)]?.map((e) => e.subject)).toEqual(["orders.cancelled.v1"]);
    expect(await getOrder(a)).toMatchObject({ status: "confirmed", payment_status: "paid" });
    expect(await getOrder(b)).toMatchObject({
      status: "cancelled",
      payment_status: "failed",
      inventory_status: "released",
      cancel_reason: "payment_card_declined",
    });
    expect(await getOrder(c)).toMatchObject({
      status: "placed",
      payment_status: "paid",
      payment_id: "pay_c",
    });
    const finalized = await handle.db
      .select({ id: orders.id, at: orders.finalized_at })
      .from(orders)
      .where(inArray(orders.id, [a, b, c, d]));
    const at = new Map(finalized.map((r) => [r.id, r.at]));
    expect(at.get(a)).toBeInstanceOf(Date);
    expect(at.get(b)).toBeInstanceOf(Date);
    expect(at.get(c)).toBeNull();
    // One statement finalizes c and moves d (cancelled already) on: d keeps the moment it became final.
    await invokeBatch(order.app, [reserved(c, "res_c"), reserved(d, "res_d")], { env });
    const after = await handle.db
      .select({ id: orders.id, at: orders.finalized_at, inventory: orders.inventory_status })
      .from(orders)
      .where(inArray(orders.id, [c, d]));
    const byId = new Map(after.map((r) => [r.id, r]));
    expect(at.get(d)).toBeInstanceOf(Date);
    expect(byId.get(d)).toEqual({ id: d, at: at.get(d), inventory: "reserved" });
    expect(byId.get(c)?.at).toBeInstanceOf(Date);
  });

  it("the processed-message prune forgets only records older than asked, behind the admin token", async () => {
    const order_id = await place();
    const message_id = ulid();
    const payment = {
      order_id,
      payment_id: "pay_p",
      amount_minor: 3000,
      currency: "EUR",
      gateway_charge_id: "ch_p",
    };
    const paid = await invoke(
      order.app,
      PaymentCompleted,
      { message_id, occurred_at: now(), ...payment } as never,
      { env },
    );
    expect(paid.status).toBe(200);
    const ours = inArray(processedMessages.message_id, [message_id]);
    const prune = (query: string, headers: Record<string, string> = {}, extra: Record<string, string> = {}) =>
      order.app.request(`/orders/processed/prune${query}`, { method: "POST", headers }, { ...env, ...extra });
    // A day old: kept by the 7-day default, forgotten when asked for older than an hour.
    await handle.db
      .update(processedMessages)
      .set({ processed_at: sql`now() - interval '1 day'` })
      .where(ours);
    expect(await (await prune("")).json()).toMatchObject({ more: false });
    expect(await handle.db.select().from(processedMessages).where(ours)).toHaveLength(1);
    const tooYoung = await prune("?older_than_s=60");
    expect(tooYoung.status).toBe(400);
    expect(await tooYoung.text()).toContain("older_than_s");
    const admin = { JETWAY_ADMIN_TOKEN: "adm" };
    expect((await prune("?older_than_s=3600", {}, admin)).status).toBe(401);
    const pruned = await prune("?older_than_s=3600", { authorization: "Bearer adm" }, admin);
    expect(pruned.status).toBe(200);
    expect(((await pruned.json()) as { deleted: number }).deleted).toBeGreaterThanOrEqual(1);
    expect(await handle.db.select().from(processedMessages).where(ours)).toEqual([]);
  });

  it("GET of an unknown order is 404", async () => {
    expect((await order.app.request("/orders/nope", {}, env)).status).toBe(404);
  });
});
