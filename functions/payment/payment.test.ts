import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type ServerType, serve } from "@hono/node-server";
import { eq } from "drizzle-orm";
import { ulid } from "ulid";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { InventoryRejected, OrderCreated } from "../../schemas/index.ts";
import type { DbHandle } from "../db/client.ts";
import { payments } from "../db/schema.ts";
import { createTestDb } from "../db/testing.ts";
import { createGatewayApp } from "../gateway-sim/app.ts";
import { GatewayState } from "../gateway-sim/state.ts";
import { batchEvent, invoke, invokeBatch } from "../sdk/testing.ts";
import { createPayment, gatewayFetchOptions } from "./app.ts";

let handle: DbHandle;
let server: ServerType;
let gatewayUrl: string;
/** The gateway behind a hop that sends its status and half its body, then drops the connection. */
let cutOffUrl: string;
let cutOff: Server;
const gateway = new GatewayState();
const payment = () => createPayment({ db: () => handle.db });

/** Forwards each request to the gateway, which does its work; its answer is cut off half way through the body. */
function cuttingProxy(): Server {
  return createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const upstream = await fetch(new URL(req.url ?? "/", gatewayUrl), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": String(req.headers["idempotency-key"] ?? ""),
      },
      body: Buffer.concat(chunks),
    });
    const body = Buffer.from(await upstream.arrayBuffer());
    res.writeHead(upstream.status, { "content-type": "application/json", "content-length": body.length });
    res.write(body.subarray(0, Math.floor(body.length / 2)));
    setTimeout(() => res.socket?.destroy(), 20);
  });
}

beforeAll(async () => {
  handle = await createTestDb();
  server = serve({ fetch: createGatewayApp(gateway).fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise((r) => server.once("listening", r));
  gatewayUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cutOff = cuttingProxy();
  await new Promise<void>((r) => cutOff.listen(0, "127.0.0.1", r));
  cutOffUrl = `http://127.0.0.1:${(cutOff.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => cutOff.close(r));
  await new Promise((r) => server.close(r));
  await handle.close();
});
beforeEach(() => gateway.reset());

function orderCreated(overrides: Partial<Record<string, unknown>> = {}) {
  return {
    message_id: ulid(),
    occurred_at: new Date().toISOString(),
    order_id: `ord_${ulid()}`,
    customer_id: "cus_1",
    items: [{ sku: "sku-1", quantity: 2, unit_price_minor: 1250 }],
    total_minor: 2500,
    currency: "EUR",
    payment_method: "card" as const,
    payment_token: "tok_visa",
    ...overrides,
  };
}

interface EventsBody {
  events: { subject: string; id?: string; data: Record<string, unknown> }[];
}

const deliver = (
  fn: ReturnType<typeof payment>,
  data: ReturnType<typeof orderCreated>,
  delivery = 1,
  url = gatewayUrl,
) =>
  invoke(fn.app, OrderCreated, data, {
    id: data.message_id,
    delivery,
    env: { GATEWAY_URL: url, JETWAY_LOG_LEVEL: "silent" },
  });

describe("payment", () => {
  it("charges once and emits payments.completed.v1 with a deterministic id", async () => {
    const data = orderCreated();
    const res = await deliver(payment(), data);
    expect(res.status).toBe(200);
    const body = (await res.json()) as EventsBody;
    expect(body.events).toHaveLength(1);
    expect(body.events[0]).toMatchObject({
      subject: "payments.completed.v1",
      id: `payments:${data.order_id}`,
      data: { order_id: data.order_id, amount_minor: 2500, currency: "EUR", customer_id: "cus_1" },
    });
    expect(gateway.getStats().charges).toBe(1);
  });

  it("20 concurrent duplicates plus redeliveries charge exactly once and agree on the event", async () => {
    gateway.setControls({ latency_ms: 50 });
    const fn = payment();
    const data = orderCreated();
    const first = await Promise.all(Array.from({ length: 20 }, () => deliver(fn, data)));
    // Duplicates that met the charge in flight were told to retry (503), never charged again.
    expect(first.every((r) => r.status === 200 || r.status === 503)).toBe(true);
    const bodies: EventsBody[] = [];
    for (const res of first) if (res.status === 200) bodies.push((await res.json()) as EventsBody);
    for (let attempt = 2; attempt <= 4; attempt++) {
      const res = await deliver(fn, data, attempt);
      expect(res.status).toBe(200);
      bodies.push((await res.json()) as EventsBody);
    }
    // Another orders.created message for the same order (e.g. republished) is a duplicate too.
    const again = await deliver(fn, { ...data, message_id: ulid() });
    bodies.push((await again.json()) as EventsBody);
    const stats = gateway.getStats();
    expect(stats.charges).toBe(1);
    expect(stats.by_key_count).toEqual({ [data.order_id]: 1 });
    const events = bodies.map((b) => JSON.stringify(b.events));
    expect(new Set(events).size).toBe(1);
    expect(await handle.db.select().from(payments).where(eq(payments.order_id, data.order_id))).toHaveLength(
      1,
    );
  });

  it("a charge whose response was lost is recovered on redelivery, not repeated", async () => {
    const fn = payment();
    const data = orderCreated();
    gateway.setControls({ fail_after_charge_rate: 1 });
    const lost = await deliver(fn, data);
    expect(lost.status).toBe(503);
    gateway.setControls({ fail_after_charge_rate: 0 });
    const res = await deliver(fn, data, 2);
    expect(res.status).toBe(200);
    const stats = gateway.getStats();
    expect(stats.charges).toBe(1);
    expect(stats.replays).toBe(1);
    const [row] = await handle.db.select().from(payments).where(eq(payments.order_id, data.order_id));
    expect(row?.status).toBe("succeeded");
  });

  it("a charge whose answer is cut off is retried, and the redelivery settles the one charge", async () => {
    const fn = payment();
    const data = orderCreated();
    const cut = await deliver(fn, data, 1, cutOffUrl);
    expect(cut.status).toBe(503);
    expect(await cut.text()).toMatch(/answer to the charge was cut off/);
    const [pending] = await handle.db.select().from(payments).where(eq(payments.order_id, data.order_id));
    expect(pending?.status).toBe("pending");
    const res = await deliver(fn, data, 2);
    expect(res.status).toBe(200);
    expect(((await res.json()) as EventsBody).events[0]?.subject).toBe("payments.completed.v1");
    expect(gateway.getStats()).toMatchObject({ charges: 1, replays: 1 });
  });

  it("an order totalling 0 fails to pay without asking the gateway", async () => {
    const data = orderCreated({
      items: [{ sku: "sku-1", quantity: 1, unit_price_minor: 0 }],
      total_minor: 0,
    });
    const res = await deliver(payment(), data);
    expect(res.status).toBe(200);
    expect(((await res.json()) as EventsBody).events).toEqual([
      expect.objectContaining({
        subject: "payments.failed.v1",
        data: expect.objectContaining({ order_id: data.order_id, reason: "zero_amount", amount_minor: 0 }),
      }),
    ]);
    expect(gateway.getStats().requests).toBe(0);
  });

  it("gateway 429 becomes 503 with its Retry-After; 5xx and outages become 503", async () => {
    const fn = payment();
    const data = orderCreated();
    gateway.setControls({ throttle_rate: 1, retry_after_s: 7 });
    const throttled = await deliver(fn, data);
    expect(throttled.status).toBe(503);
    expect(throttled.headers.get("retry-after")).toBe("7");
    gateway.setControls({ throttle_rate: 0, error_rate: 1 });
    expect((await deliver(fn, data, 2)).status).toBe(503);
    gateway.setControls({ error_rate: 0, outage_until: Date.now() + 60_000 });
    expect((await deliver(fn, data, 3)).status).toBe(503);
    gateway.setControls({ outage_until: 0 });
    expect((await deliver(fn, data, 4)).status).toBe(200);
    expect(gateway.getStats().charges).toBe(1);
  });

  it("an unreachable gateway is retryable", async () => {
    const data = orderCreated();
    const res = await invoke(payment().app, OrderCreated, data, {
      id: data.message_id,
      env: { GATEWAY_URL: "http://127.0.0.1:9", JETWAY_LOG_LEVEL: "silent" },
    });
    expect(res.status).toBe(503);
  });

  it("a declined card emits payments.failed.v1 — a business outcome, not an error", async () => {
    const fn = payment();
    const data = orderCreated({ payment_token: "tok_decline" });
    const res = await deliver(fn, data);
    expect(res.status).toBe(200);
    const body = (await res.json()) as EventsBody;
    expect(body.events).toEqual([
      expect.objectContaining({
        subject: "payments.failed.v1",
        id: `payments:${data.order_id}`,
        data: expect.objectContaining({ order_id: data.order_id, reason: "card_declined" }),
      }),
    ]);
    const redelivered = (await (await deliver(fn, data, 2)).json()) as EventsBody;
    expect(redelivered).toEqual(body);
    expect(gateway.getStats()).toMatchObject({ charges: 1, declined: 1 });
  });

  it("an invalid event is refused with 4xx and charges nothing", async () => {
    const data = orderCreated({ total_minor: -5 });
    const res = await deliver(payment(), data);
    expect(res.status).toBe(422);
    expect(gateway.getStats().requests).toBe(0);
  });

  it("a batch charges each order once, side by side, and answers per message", async () => {
    const fn = payment();
    const env = { GATEWAY_URL: gatewayUrl, JETWAY_LOG_LEVEL: "silent" };
    const ok = orderCreated();
    const declined = orderCreated({ payment_token: "tok_decline" });
    const billed = orderCreated();
    expect((await deliver(fn, billed)).status).toBe(200);
    // Another order under a message id already billed: refused alone, never charged.
    const reused = { ...orderCreated(), message_id: billed.message_id };
    const batch = [ok, declined, reused].map((o) => batchEvent(o.order_id, OrderCreated, o));
    type BatchBody = {
      failures: { id: string; retry_after?: number; dead_letter?: boolean }[];
      events: Record<string, { subject: string }[]>;
    };
    const first = (await (await invokeBatch(fn.app, batch, { env })).json()) as BatchBody;
    expect(first.failures).toEqual([expect.objectContaining({ id: reused.order_id, dead_letter: true })]);
    expect(first.events[ok.order_id]?.map((e) => e.subject)).toEqual(["payments.completed.v1"]);
    expect(first.events[declined.order_id]?.map((e) => e.subject)).toEqual(["payments.failed.v1"]);
    expect(gateway.getStats()).toMatchObject({ charges: 3, declined: 1 });
    // Redelivered whole: the same answer, nothing charged twice.
    expect(await (await invokeBatch(fn.app, batch, { env })).json()).toEqual(first);
    expect(gateway.getStats().charges).toBe(3);
    // A throttling gateway: each message is retried with its Retry-After.
    gateway.setControls({ throttle_rate: 1, retry_after_s: 7 });
    const later = orderCreated();
    const throttled = (await (
      await invokeBatch(fn.app, [batchEvent(later.message_id, OrderCreated, later)], { env })
    ).json()) as BatchBody;
    expect(throttled.failures).toEqual([expect.objectContaining({ id: later.message_id, retry_after: 7 })]);
  });

  describe("GATEWAY_CHARGES_IN_FLIGHT", () => {
    /** A payment function whose gateway calls are counted while they are open. */
    function counted() {
      const open = { now: 0, most: 0 };
      const fetchCounting: typeof fetch = async (input, init) => {
        open.most = Math.max(open.most, ++open.now);
        try {
          return await fetch(input, init);
        } finally {
          open.now--;
        }
      };
      return { fn: createPayment({ db: () => handle.db, fetch: fetchCounting }), open };
    }
    const batchOf = (n: number) =>
      Array.from({ length: n }, () => orderCreated()).map((o) => batchEvent(o.message_id, OrderCreated, o));

    it.each([
      [undefined, 24, 16],
      ["5", 12, 5],
      ["40", 24, 24],
    ])("set to %s, a batch of %i has at most %i charges open at once", async (setting, size, most) => {
      gateway.setControls({ latency_ms: 20 });
      const { fn, open } = counted();
      const env = {
        GATEWAY_URL: gatewayUrl,
        JETWAY_LOG_LEVEL: "silent",
        ...(setting ? { GATEWAY_CHARGES_IN_FLIGHT: setting } : {}),
      };
      const body = (await (await invokeBatch(fn.app, batchOf(size), { env })).json()) as { failures: [] };
      expect(body.failures).toEqual([]);
      expect(open.most).toBe(most);
      expect(gateway.getStats().charges).toBe(size);
    });

    it("a value it cannot use fails the batch for a retry, charging nothing", async () => {
      const { fn } = counted();
      const env = { GATEWAY_URL: gatewayUrl, JETWAY_LOG_LEVEL: "silent", GATEWAY_CHARGES_IN_FLIGHT: "0" };
      const body = (await (await invokeBatch(fn.app, batchOf(2), { env })).json()) as {
        failures: { dead_letter?: boolean }[];
      };
      expect(body.failures).toHaveLength(2);
      expect(body.failures.every((f) => f.dead_letter !== true)).toBe(true);
      expect(gateway.getStats().requests).toBe(0);
    });

    it.each([
      ["GATEWAY_CHARGES_IN_FLIGHT", "lots"],
      ["GATEWAY_TIMEOUT_MS", "10s"],
      ["GATEWAY_CONNECTIONS", "0"],
    ])("%s=%s stops a Node host's start, naming it", async (name, value) => {
      const entry = fileURLToPath(new URL("./node.ts", import.meta.url));
      const started = await promisify(execFile)(process.execPath, [entry], {
        env: { ...process.env, [name]: value, PGLITE_DIR: "memory", PORT: "0" },
        timeout: 30_000,
      }).then(
        () => "started",
        (err: { stderr: string }) => err.stderr,
      );
      expect(started).toContain(`${name} must be a whole number of at least 1, got "${value}"`);
    });

    it("GATEWAY_CONNECTIONS sizes a Node or Lambda host's gateway transport", () => {
      expect(gatewayFetchOptions({})).toEqual({});
      expect(gatewayFetchOptions({ GATEWAY_CONNECTIONS: "256" })).toEqual({ connections: 256 });
      expect(() => gatewayFetchOptions({ GATEWAY_CONNECTIONS: "-4" })).toThrow(/GATEWAY_CONNECTIONS must be/);
    });
  });

  describe("compensation on inventory.rejected.v1", () => {
    const rejected = (orderId: string, url = gatewayUrl) => {
      const data = {
        message_id: ulid(),
        occurred_at: new Date().toISOString(),
        order_id: orderId,
        reason: "out_of_stock",
        skus: ["sku-1"],
      };
      return invoke(payment().app, InventoryRejected, data, {
        id: data.message_id,
        env: { GATEWAY_URL: url, JETWAY_LOG_LEVEL: "silent" },
      });
    };
    const row = async (orderId: string) =>
      (await handle.db.select().from(payments).where(eq(payments.order_id, orderId)))[0];

    it("refunds a completed charge once, however often the rejection arrives", async () => {
      const fn = payment();
      const data = orderCreated();
      const charged = (await (await deliver(fn, data)).json()) as EventsBody;
      const results = await Promise.all([rejected(data.order_id), rejected(data.order_id)]);
      results.push(await rejected(data.order_id));
      expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
      const stats = gateway.getStats();
      expect(stats.refunds).toBe(1);
      expect(Object.values(stats.refunds_by_charge)).toEqual([1]);
      expect(await row(data.order_id)).toMatchObject({ status: "refunded", refund_id: expect.any(String) });
      // A late redelivery of the order still reports the charge that happened, identically.
      expect(await (await deliver(fn, data, 2)).json()).toEqual(charged);
      expect(gateway.getStats().charges).toBe(1);
    });

    it("a refund whose answer is cut off is retried, and the redelivery records the one refund", async () => {
      const data = orderCreated();
      expect((await deliver(payment(), data)).status).toBe(200);
      const cut = await rejected(data.order_id, cutOffUrl);
      expect(cut.status).toBe(503);
      expect(await row(data.order_id)).toMatchObject({ status: "succeeded", refund_id: null });
      expect((await rejected(data.order_id)).status).toBe(200);
      expect(gateway.getStats().refunds).toBe(1);
      expect(await row(data.order_id)).toMatchObject({ status: "refunded", refund_id: expect.any(String) });
    });

    it("a rejection that arrives before the order means it is never charged", async () => {
      const data = orderCreated();
      expect((await rejected(data.order_id)).status).toBe(200);
      const res = await deliver(payment(), data);
      expect(res.status).toBe(200);
      expect(((await res.json()) as EventsBody).events).toEqual([
        expect.objectContaining({
          subject: "payments.failed.v1",
          data: expect.objectContaining({ reason: "order_cancelled", amount_minor: 2500, currency: "EUR" }),
        }),
      ]);
      expect(gateway.getStats().requests).toBe(0);
    });

    it("a declined payment needs no refund", async () => {
      const data = orderCreated({ payment_token: "tok_decline" });
      await deliver(payment(), data);
      expect((await rejected(data.order_id)).status).toBe(200);
      expect(gateway.getStats().refunds).toBe(0);
      expect(await row(data.order_id)).toMatchObject({ status: "declined" });
    });
  });
});
