import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unstable_startWorker } from "wrangler";
import type { DbHandle } from "./db/client.ts";
import { processedMessages } from "./db/schema.ts";
import { createTestDb, type ServedTestDb, serveTestDb } from "./db/testing.ts";
import { seedStock } from "./inventory/stock.ts";
import { CRON_TASKS } from "./order/housekeeping.ts";

type Worker = Awaited<ReturnType<typeof unstable_startWorker>>;

/** A function's Worker from its own wrangler.toml, against the test database, in workerd. */
async function startWorker(name: string): Promise<Worker> {
  const started = await unstable_startWorker({
    config: resolve(import.meta.dirname, name, "wrangler.toml"),
    bindings: {
      DATABASE_URL: { type: "plain_text", value: served.url },
      ...(served.schema ? { DATABASE_SCHEMA: { type: "plain_text", value: served.schema } } : {}),
      JETWAY_LOG_LEVEL: { type: "plain_text", value: "silent" },
    },
    dev: {
      remote: false,
      persist: false,
      watch: false,
      inspector: false,
      logLevel: "error",
      server: { hostname: "127.0.0.1", port: 0 },
    },
    sendMetrics: false,
  });
  await started.ready;
  return started;
}

/**
 * The inventory and order Workers in workerd (wrangler's local runtime): postgres.js over Workers sockets, a
 * fresh connection per request (a shared one fails on the second request), transactions with savepoints,
 * and the order function's cron triggers.
 */
let handle: DbHandle;
let served: ServedTestDb;
let worker: Worker;
let order: Worker;

beforeAll(async () => {
  handle = await createTestDb();
  await seedStock(handle.db, { "sku-w": 4 });
  // workerd reaches the database over TCP: PostgreSQL itself, or the PGlite instance served on a port.
  served = await serveTestDb(handle);
  [worker, order] = await Promise.all([startWorker("inventory"), startWorker("order")]);
}, 120_000);

afterAll(async () => {
  await worker?.dispose();
  await order?.dispose();
  await served?.close();
  await handle?.close();
});

const orderCreated = (n: number) => ({
  message_id: `01M85Q6XZHTYF6C48JR9ED5KG${n}`,
  occurred_at: "2026-01-01T00:00:00Z",
  order_id: `ord_w${n}`,
  customer_id: "c",
  items: [{ sku: "sku-w", quantity: 3, unit_price_minor: 1 }],
  total_minor: 3,
  currency: "EUR",
  payment_token: "tok",
});

async function deliver(n: number) {
  const res = await worker.fetch("http://worker/events", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "ce-specversion": "1.0",
      "ce-id": `m${n}`,
      "ce-type": "orders.created.v1",
      "x-jetway-stream": "ORDERS",
      "x-jetway-seq": String(n),
    },
    body: JSON.stringify(orderCreated(n)),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { events: { subject: string }[] };
}

describe("inventory on the Workers runtime", () => {
  it("reserves, then refuses what is left short, across separate requests", async () => {
    expect((await deliver(1)).events.map((e) => e.subject)).toEqual(["inventory.reserved.v1"]);
    expect((await deliver(2)).events.map((e) => e.subject)).toEqual(["inventory.rejected.v1"]);
    const level = await worker.fetch("http://worker/stock/sku-w");
    expect(await level.json()).toEqual({ sku: "sku-w", available: 1 });
  });
});

describe("order on the Workers runtime", () => {
  // workerd's local stand-in for a cron trigger firing.
  const fire = (cron: string) =>
    order.fetch(`http://worker/cdn-cgi/handler/scheduled?cron=${encodeURIComponent(cron)}`);

  it("its cron triggers are the ones the worker has tasks for", () => {
    const toml = readFileSync(resolve(import.meta.dirname, "order/wrangler.toml"), "utf8");
    const crons = JSON.parse(/^crons = (\[.*\])$/m.exec(toml)?.[1] ?? "[]") as string[];
    expect(crons.sort()).toEqual(Object.keys(CRON_TASKS).sort());
  });

  it("the nightly trigger prunes old processed records; an unknown trigger fails", async () => {
    const stale = { consumer: "order", message_id: `worker-${Date.now()}` };
    await handle.db
      .insert(processedMessages)
      .values({ ...stale, processed_at: new Date(Date.now() - 8 * 86_400_000) });
    const ours = eq(processedMessages.message_id, stale.message_id);
    const nightly = Object.entries(CRON_TASKS).find(([, task]) => task === "processed-prune")?.[0] ?? "";
    expect((await fire(nightly)).status).toBe(200);
    expect(await handle.db.select().from(processedMessages).where(ours)).toEqual([]);
    expect((await fire("0 0 1 1 *")).status).toBeGreaterThanOrEqual(500);
  });
});
