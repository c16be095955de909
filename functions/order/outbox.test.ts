import { ulid } from "ulid";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { DbHandle } from "../db/client.ts";
import { createTestDb } from "../db/testing.ts";
import { createOrder } from "./app.ts";
import { insertOrder, loadOrder } from "./store.ts";

let handle: DbHandle;
const env = { JETWAY_PUBLISH_URL: "http://ingress.invalid", JETWAY_LOG_LEVEL: "silent" };
beforeAll(async () => {
  handle = await createTestDb();
});
afterAll(async () => handle?.close());

/** An ingress that stores every event but those it refuses for good (e.g. past the stream's max_msg_size). */
const ingress: typeof fetch = async (_url, init) => {
  const { events } = JSON.parse(String(init?.body)) as { events: { data: { customer_id: string } }[] };
  const results = events.map((e) =>
    e.data.customer_id === "cus_refused"
      ? { error: { code: "max_payload", status: 400 } }
      : { stream: "ORDERS", seq: 1, duplicate: false },
  );
  return new Response(JSON.stringify({ results }), { status: 207 });
};

const place = async (customer_id: string) =>
  (
    await insertOrder(handle.db, {
      request: {
        customer_id,
        items: [{ sku: "s", quantity: 1, unit_price_minor: 100 }],
        currency: "EUR",
        payment_token: "t",
      },
      total_minor: 100,
      request_hash: "h",
      idempotency_key: `k-${ulid()}`,
      event: (order_id) => ({ message_id: ulid(), order_id, customer_id }),
    })
  ).order.id;

it("the outbox flush reaches an order behind 100 whose events the ingress refuses for good", async () => {
  const order = createOrder({ db: () => handle.db, fetch: ingress });
  for (let i = 0; i < 100; i++) await place("cus_refused");
  const behind = await place("cus_ok");
  const flush = async () =>
    (await order.app.request("/orders/outbox/flush?older_than_s=0", { method: "POST" }, env)).json();
  // The first flush takes the 100 oldest and fails them all: they go to the back of the queue.
  expect(await flush()).toEqual({ pending: 100, published: 0 });
  expect(await flush()).toMatchObject({ published: 1 });
  expect((await loadOrder(handle.db, behind))?.status).toBe("placed");
});
