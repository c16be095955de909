import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers, type MsgHdrs } from "@nats-io/nats-core";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DLQ_HEADERS } from "../../bridge/dead-letter-headers.ts";
import { waitFor } from "../../bridge/testing/http-function.ts";
import { DirStore } from "../../functions/audit/dir-store.ts";
import { readLog } from "../../functions/audit/replay.ts";
import { orders, payments, reservations, stock } from "../../functions/db/schema.ts";
import type { Stats } from "../../functions/gateway-sim/state.ts";
import { EXAMPLE_ORDER } from "./banner.ts";
import { HoldGate } from "./hold-gate.ts";
import { localUrl } from "./ports.ts";
import {
  type PlacedOrder,
  placeOrder,
  type System,
  startSystem,
  waitFinal,
  waitQuiet,
} from "./system-fixture.ts";

/*
 * The "done when": orders flow order → payment → inventory → audit through the bridge and
 * JetStream; under a failing, throttling gateway no order is charged twice, a charge whose stock is refused
 * is refunded once, and stock never goes negative; invalid events land in the dead-letter stream with the
 * reason.
 */

const SCARCE = 450;
let system: System;
// Between the bridge and inventory's orders.created route, so a test can hold inventory's answer.
let inventoryGate: HoldGate;

beforeAll(async () => {
  inventoryGate = await HoldGate.start(() => localUrl(system.ports.functions.inventory));
  system = await startSystem({
    stock: { "sku-coffee": 100, "sku-mug": 100, "sku-gone": 0, "sku-scarce": SCARCE, "sku-outage": 1_000 },
    routes: {
      inventory: { url: `${inventoryGate.url}/events` },
      // The outage test holds the gateway down longer than the fixture's 20 fast attempts last (~9 s): the
      // circuit breaker pauses the route instead. Short pauses, so payment resumes soon after the gateway.
      payment: { circuit_breaker: { failures: 10, open_for: "500ms", max_open: "1s" } },
    },
    // A route whose secret the functions do not share: every delivery is a forged signature (401,
    // retryable by contract), so it dead-letters once its two attempts are spent.
    extraRoutes: (ports) => [
      {
        name: "forged",
        stream: "ORDERS",
        filter_subject: "orders.forged.v1",
        url: localUrl(ports.functions.payment, "/events"),
        secret: "not-the-secret",
        max_deliver: 2,
        backoff: ["50ms"],
      },
    ],
  });
}, 120_000);

afterAll(async () => {
  await system?.close();
  await inventoryGate?.close();
});

interface OrderView {
  status: string;
  payment_status: string;
  inventory_status: string;
  cancel_reason: string | null;
}

async function getOrder(id: string): Promise<OrderView> {
  const res = await fetch(localUrl(system.ports.functions.order, `/orders/${id}`));
  expect(res.status).toBe(200);
  return (await res.json()) as OrderView;
}

describe("end to end through the bridge", () => {
  it("takes each order to its final status", async () => {
    const good = await placeOrder(system, "e2e-good", EXAMPLE_ORDER);
    const declined = await placeOrder(system, "e2e-declined", {
      ...EXAMPLE_ORDER,
      payment_token: "tok_decline",
    });
    const noStock = await placeOrder(system, "e2e-no-stock", {
      ...EXAMPLE_ORDER,
      items: [{ sku: "sku-gone", quantity: 1, unit_price_minor: 100 }],
    });
    expect(good.status).toBe("placed");
    await waitFinal(system, [good.order_id, declined.order_id, noStock.order_id]);
    await waitQuiet(system);

    expect(await getOrder(good.order_id)).toMatchObject({
      status: "confirmed",
      payment_status: "paid",
      inventory_status: "reserved",
    });
    const cancelled = await getOrder(declined.order_id);
    // Whichever reached inventory first, the reservation or the release, its stock ends released.
    expect(cancelled).toMatchObject({
      status: "cancelled",
      payment_status: "failed",
      inventory_status: "released",
    });
    expect(await getOrder(noStock.order_id)).toMatchObject({
      status: "cancelled",
      inventory_status: "rejected",
    });
    // The released stock is back: only the confirmed order's items are gone.
    const levels = await system.db.db.select().from(stock);
    const level = (sku: string) => levels.find((l) => l.sku === sku)?.available;
    expect(level("sku-coffee")).toBe(98);
    expect(level("sku-mug")).toBe(99);
    // …and the audit function logged the confirmed order's whole story.
    const story = (await readAudit()).filter((e) => e.data.order_id === good.order_id).map((e) => e.subject);
    expect(story.sort()).toEqual([
      "inventory.reserved.v1",
      "orders.confirmed.v1",
      "orders.created.v1",
      "payments.completed.v1",
    ]);
  });

  it("refunds the charge of an order whose stock is refused after the card was charged", async () => {
    // Inventory's delivery is held until the card is charged, so the rejection reaches payment after the
    // charge (were it first, payment would cancel the payment instead, and nothing would be charged).
    inventoryGate.hold();
    let placed: PlacedOrder;
    try {
      placed = await placeOrder(system, "e2e-refund", {
        ...EXAMPLE_ORDER,
        items: [{ sku: "sku-coffee", quantity: 1_000, unit_price_minor: 100 }],
      });
      await waitPayment(placed.order_id, "succeeded");
    } finally {
      inventoryGate.release();
    }
    await waitFinal(system, [placed.order_id]);
    await waitQuiet(system);

    expect(await getOrder(placed.order_id)).toMatchObject({
      status: "cancelled",
      payment_status: "paid",
      inventory_status: "rejected",
    });
    // inventory.rejected.v1 went through the payment-refunds route: the charge was refunded, once.
    const [payment] = await system.db.db
      .select()
      .from(payments)
      .where(eq(payments.order_id, placed.order_id));
    expect(payment).toMatchObject({ status: "refunded", refund_id: expect.stringMatching(/^re_/) });
    const res = await fetch(localUrl(system.ports.functions["gateway-sim"], "/stats"));
    const stats = (await res.json()) as Stats;
    expect(stats.by_key_count[placed.order_id]).toBe(1);
    expect(stats.refunds_by_charge[payment?.gateway_charge_id ?? "none"]).toBe(1);
  });

  it("ends a declined order's stock released when the release overtakes the reservation", async () => {
    // Inventory's delivery of the order is held until the release has left its tombstone, so the late
    // reservation holds nothing and has to announce the release itself.
    const levels = async () =>
      Object.fromEntries((await system.db.db.select().from(stock)).map((l) => [l.sku, l.available]));
    const before = await levels();
    inventoryGate.hold();
    let placed: PlacedOrder;
    try {
      placed = await placeOrder(system, "e2e-release-first", {
        ...EXAMPLE_ORDER,
        payment_token: "tok_decline",
      });
      await waitFinal(system, [placed.order_id]);
      await waitReservation(placed.order_id, "released");
      expect(await getOrder(placed.order_id)).toMatchObject({ inventory_status: "pending" });
    } finally {
      inventoryGate.release();
    }
    await waitQuiet(system);

    expect(await getOrder(placed.order_id)).toMatchObject({
      status: "cancelled",
      payment_status: "failed",
      inventory_status: "released",
    });
    expect(await levels()).toEqual(before);
  });
});

/** Polls until the order's reservation row has the given status (the test's own timeout bounds the wait). */
async function waitReservation(orderId: string, status: string): Promise<void> {
  for (;;) {
    const [row] = await system.db.db.select().from(reservations).where(eq(reservations.order_id, orderId));
    if (row?.status === status) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls until the order's payment row has the given status (the test's own timeout bounds the wait). */
async function waitPayment(orderId: string, status: string): Promise<void> {
  for (;;) {
    const [row] = await system.db.db.select().from(payments).where(eq(payments.order_id, orderId));
    if (row?.status === status) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface AuditEntry {
  subject: string;
  id: string;
  stream: string;
  seq: number;
  data: { order_id?: string };
}

/** The audit log as its own store reads it back (a fresh reader, as the replay tool would be). */
async function readAudit(): Promise<AuditEntry[]> {
  return (await readLog(new DirStore(system.auditDir))) as AuditEntry[];
}

/** Runs `task` over `items` with at most `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

describe("500 orders against a failing, throttling gateway", () => {
  it("charges every order at most once, refunds those refused stock, and never oversells", async () => {
    const gateway = system.host.gateway;
    gateway.reset();
    gateway.setControls({
      error_rate: 0.3,
      throttle_rate: 0.1,
      retry_after_s: 1,
      fail_after_charge_rate: 0.05,
    });
    const order = (i: number) => ({
      customer_id: `cus_${i % 37}`,
      currency: "EUR",
      payment_token: "tok_visa",
      items: [{ sku: "sku-scarce", quantity: 1, unit_price_minor: 500 + i }],
    });
    const indexes = Array.from({ length: 500 }, (_, i) => i);
    const placed = await pool(indexes, 25, (i) => placeOrder(system, `chaos-${i}`, order(i)));
    // A client retrying the same Idempotency-Key gets the same order, not a second one.
    const again = await pool(indexes.slice(0, 50), 25, (i) => placeOrder(system, `chaos-${i}`, order(i)));
    expect(again.map((o) => o.order_id)).toEqual(placed.slice(0, 50).map((o) => o.order_id));
    const ids = placed.map((o) => o.order_id);
    expect(new Set(ids).size).toBe(500);
    await waitFinal(system, ids);
    await waitQuiet(system);

    const stats = gateway.getStats();
    // The chaos really happened, and was retried through.
    expect(stats.errors).toBeGreaterThan(50);
    expect(stats.throttled).toBeGreaterThan(10);
    expect(stats.requests).toBeGreaterThan(stats.charges);
    // Exactly once: every order whose stock was reserved is charged once. One whose stock was refused
    // is either refunded once (rejected after its charge) or never charged (rejected before it).
    const rows = await system.db.db
      .select({ status: payments.status, charge: payments.gateway_charge_id })
      .from(payments)
      .where(sql`${payments.order_id} in ${ids}`);
    const withStatus = (status: string) => rows.filter((r) => r.status === status);
    const refunded = withStatus("refunded").length;
    expect(rows).toHaveLength(500);
    expect(withStatus("succeeded")).toHaveLength(SCARCE);
    expect(refunded + withStatus("cancelled").length).toBe(50);
    expect(stats.charges).toBe(SCARCE + refunded);
    expect(Object.keys(stats.by_key_count)).toHaveLength(stats.charges);
    expect(Object.values(stats.by_key_count).every((n) => n === 1)).toBe(true);
    const paid = await system.db.db
      .select({ n: sql<number>`count(*)::int` })
      .from(orders)
      .where(sql`${orders.id} in ${ids} and ${orders.payment_status} = 'paid'`);
    expect(paid[0]?.n).toBe(stats.succeeded);
    expect(stats.succeeded).toBe(stats.charges);
    const chargeIds = rows.flatMap((r) => (r.charge ? [r.charge] : []));
    expect(new Set(chargeIds).size).toBe(stats.charges);
    expect(stats.refunds).toBe(refunded);
    expect(Object.keys(stats.refunds_by_charge).sort()).toEqual(
      withStatus("refunded")
        .map((r) => r.charge)
        .sort(),
    );
    expect(Object.values(stats.refunds_by_charge).every((n) => n === 1)).toBe(true);

    // Never oversold: exactly the scarce stock was reserved, the rest rejected, nothing below zero.
    const [scarce] = await system.db.db.select().from(stock).where(eq(stock.sku, "sku-scarce"));
    expect(scarce?.available).toBe(0);
    const held = await system.db.db
      .select({ status: reservations.status, n: sql<number>`count(*)::int` })
      .from(reservations)
      .where(sql`${reservations.order_id} in ${ids}`)
      .groupBy(reservations.status);
    expect(Object.fromEntries(held.map((h) => [h.status, h.n]))).toEqual({ reserved: SCARCE, rejected: 50 });
    const final = await system.db.db
      .select({ status: orders.status, n: sql<number>`count(*)::int` })
      .from(orders)
      .where(sql`${orders.id} in ${ids}`)
      .groupBy(orders.status);
    expect(Object.fromEntries(final.map((f) => [f.status, f.n]))).toEqual({
      confirmed: SCARCE,
      cancelled: 50,
    });

    // The audit log holds every stream message once, and each order's four events exactly once each.
    const audit = await readAudit();
    const jsm = await jetstreamManager(system.bridge.nc);
    let messages = 0;
    for (const stream of ["ORDERS", "PAYMENTS", "INVENTORY"]) {
      messages += (await jsm.streams.info(stream)).state.messages;
    }
    expect(audit).toHaveLength(messages);
    expect(new Set(audit.map((e) => e.id)).size).toBe(audit.length);
    const kinds = new Map<string, string[]>();
    for (const e of audit) {
      if (e.data.order_id) kinds.set(e.data.order_id, [...(kinds.get(e.data.order_id) ?? []), e.subject]);
    }
    const confirmed = "inventory.reserved.v1,orders.confirmed.v1,orders.created.v1,payments.completed.v1";
    const refundedShape = "inventory.rejected.v1,orders.cancelled.v1,orders.created.v1,payments.completed.v1";
    const uncharged = "inventory.rejected.v1,orders.cancelled.v1,orders.created.v1,payments.failed.v1";
    const shapes = ids.map((id) => (kinds.get(id) ?? []).sort().join(","));
    expect(shapes.filter((s) => s === confirmed)).toHaveLength(SCARCE);
    expect(shapes.filter((s) => s === refundedShape)).toHaveLength(refunded);
    expect(shapes.filter((s) => s === uncharged)).toHaveLength(50 - refunded);
  }, 300_000);
});

interface Letter {
  reason: string;
  status: string;
  response: string;
  body: string;
}

/** Reads `dlq.<route>` from the start until the dead letter of stream sequence `seq` is there. */
async function deadLetterOf(route: string, seq: number): Promise<Letter> {
  const js = jetstream(system.bridge.nc);
  const { dead_letter } = system.bridge.config;
  for (;;) {
    const consumer = await js.consumers.get(dead_letter.stream, {
      filter_subjects: `${dead_letter.subject_prefix}.${route}`,
    });
    for (;;) {
      const msg = await consumer.next({ expires: 1_000 });
      if (!msg) break;
      const h = msg.headers as MsgHdrs;
      if (h.get(DLQ_HEADERS.seq) === String(seq)) {
        return {
          reason: h.get(DLQ_HEADERS.reason),
          status: h.get(DLQ_HEADERS.status),
          response: h.get(DLQ_HEADERS.response),
          body: msg.string(),
        };
      }
    }
    await consumer.delete().catch(() => {});
  }
}

describe("a payment outage", () => {
  it("blocks neither intake nor the other consumers; payment pauses, and catches up once the gateway is back", async () => {
    const gateway = system.host.gateway;
    const paused: number[] = [];
    const onOpen = ({ route }: { route: string }) => {
      if (route === "payment") paused.push(performance.now());
    };
    system.bridge.events.on("circuit:open", onOpen);
    const jsm = await jetstreamManager(system.bridge.nc);
    const deadLettersBefore = (await jsm.streams.info(system.bridge.config.dead_letter.stream)).state
      .messages;
    gateway.reset();
    gateway.setControls({ outage_until: Date.now() + 10 * 60_000 });
    const order = (i: number) => ({
      customer_id: `cus_outage_${i}`,
      currency: "EUR",
      payment_token: "tok_visa",
      items: [{ sku: "sku-outage", quantity: 1, unit_price_minor: 700 }],
    });
    const indexes = Array.from({ length: 40 }, (_, i) => i);
    const placed = await pool(indexes, 10, (i) => placeOrder(system, `outage-${i}`, order(i)));
    expect(placed.map((o) => o.status)).toEqual(indexes.map(() => "placed"));
    const ids = placed.map((o) => o.order_id);
    const count = async (where: ReturnType<typeof sql>) => {
      const [row] = await system.db.db
        .select({ n: sql<number>`count(*)::int` })
        .from(orders)
        .where(sql`${orders.id} in ${ids} and ${where}`);
      return row?.n ?? 0;
    };

    // Inventory goes on while payment cannot: every order's stock is reserved; the payment route pauses.
    const reserved = async () => (await count(sql`${orders.inventory_status} = 'reserved'`)) === ids.length;
    await waitFor("every order's stock reserved", reserved, 30_000);
    await waitFor("the payment route to pause", () => paused.length > 0, 30_000);
    // Longer than the route's 20 attempts at the fixture's back-off take: without the pause, dead letters.
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    expect(gateway.getStats().charges).toBe(0);
    expect((await jsm.streams.info(system.bridge.config.dead_letter.stream)).state.messages).toBe(
      deadLettersBefore,
    );
    expect(await count(sql`${orders.payment_status} = 'pending' and ${orders.status} = 'placed'`)).toBe(
      ids.length,
    );

    gateway.setControls({ outage_until: 0 });
    await waitFinal(system, ids);
    await waitQuiet(system);
    expect(await count(sql`${orders.status} = 'confirmed'`)).toBe(ids.length);
    const stats = gateway.getStats();
    expect(stats.requests).toBeGreaterThan(ids.length);
    expect(stats.charges).toBe(ids.length);
    expect(Object.values(stats.by_key_count).every((n) => n === 1)).toBe(true);
    // Held through the outage, not dead-lettered.
    expect((await jsm.streams.info(system.bridge.config.dead_letter.stream)).state.messages).toBe(
      deadLettersBefore,
    );
    system.bridge.events.off("circuit:open", onOpen);
  }, 90_000);
});

describe("invalid events", () => {
  it("land in the dead-letter stream with the status and the function's reason", async () => {
    const js = jetstream(system.bridge.nc);
    const json = headers();
    json.set("Content-Type", "application/json");
    const badJson = await js.publish("orders.created.v1", "{not json", { headers: json });
    const badSchema = await js.publish("orders.created.v1", JSON.stringify({ order_id: "ord_bad" }), {
      headers: json,
    });
    const valid = JSON.stringify({
      ...EXAMPLE_ORDER,
      message_id: "01JDEV00000000000000000FAK",
      occurred_at: new Date().toISOString(),
      order_id: "ord_forged",
      total_minor: 3400,
    });
    const forged = await js.publish("orders.forged.v1", valid, { headers: json });

    // The payment route delivers in batches: the answer is a 200 listing each bad message with its reason.
    const letter1 = await deadLetterOf("payment", badJson.seq);
    expect(letter1).toMatchObject({ status: "200", body: "{not json" });
    expect(`${letter1.reason} ${letter1.response}`).toContain("invalid JSON");

    const letter2 = await deadLetterOf("payment", badSchema.seq);
    expect(letter2.status).toBe("200");
    expect(`${letter2.reason} ${letter2.response}`).toMatch(/message_id: .*customer_id: /);

    // 401 is retryable by contract (a rotated secret heals), so it dead-letters after max_deliver attempts.
    const letter3 = await deadLetterOf("forged", forged.seq);
    expect(letter3.status).toBe("401");
    expect(letter3.reason).toMatch(/attempt 2 of 2 failed: HTTP 401/);
    expect(letter3.response).toMatch(/signature/);
    expect(letter3.body).toBe(valid);
  });
});
