import type { Context } from "hono";
import {
  InventoryRejected,
  InventoryReleased,
  InventoryReserved,
  OrderCreated,
  PaymentCompleted,
  PaymentFailed,
} from "../../schemas/index.ts";
import type { DbProvider } from "../db/client.ts";
import { requestVars, requireVar } from "../db/env.ts";
import { ulid } from "../db/ids.ts";
import {
  type BatchHandler,
  defineFunction,
  type EventData,
  type EventType,
  type JetwayFunction,
  readText,
} from "../sdk/index.ts";
import { pruneApplied, refuseWithoutAdmin } from "./admin.ts";
import { announceFinal, type RecordResult, recordOrderEvents, stateOf } from "./events.ts";
import { coalescingPublisher, type EventPublisher, PublishError, type PublishTarget } from "./publish.ts";
import { parseOrderRequest, requestHash } from "./request.ts";
import type { OrderEvent } from "./status.ts";
import { insertOrder, loadOrder, markPublished, noteUnpublished, type Order, unpublished } from "./store.ts";

export interface OrderDeps {
  db: DbProvider;
  /** The publish ingress's transport: the platform's fetch by default; Node hosts pass createNodeFetch(). */
  fetch?: typeof fetch;
}

/** Seconds a client should wait before retrying a POST whose event could not be published. */
const PUBLISH_RETRY_AFTER_S = 2;

function publishTarget(c: Context, deps: OrderDeps): PublishTarget {
  const v = requestVars(c);
  return {
    url: requireVar(v, "JETWAY_PUBLISH_URL"),
    token: v.JETWAY_PUBLISH_TOKEN,
    secret: v.JETWAY_PUBLISH_SECRET,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  };
}

/** Sends the order's outbox event; on success the order leaves pending_publish. */
async function publishOrder(
  c: Context,
  deps: OrderDeps,
  publish: EventPublisher,
  order: Pick<Order, "id" | "created_event">,
): Promise<void> {
  const db = deps.db(c);
  const event = order.created_event as { message_id: string };
  await publish(db, publishTarget(c, deps), {
    subject: OrderCreated.subject,
    id: event.message_id,
    data: order.created_event,
    traceparent: c.req.header("traceparent"),
  });
  await markPublished(db, order.id);
}

export const orderView = (o: Order) => ({
  order_id: o.id,
  customer_id: o.customer_id,
  items: o.items,
  total_minor: o.total_minor,
  currency: o.currency,
  ...stateOf(o),
  created_at: o.created_at.toISOString(),
  updated_at: o.updated_at.toISOString(),
});

/**
 * order: the public entry of the domain. POST /orders stores the order and its orders.created.v1 event in
 * one row (an outbox), then publishes through the bridge's ingress. If the ingress is down the order
 * stays `pending_publish` and the client gets 503 + Retry-After: retrying with the same Idempotency-Key
 * finds the stored order and publishes the very same event (same message id, so JetStream drops a copy
 * that did get through). POST /orders/outbox/flush republishes orders a client never retried;
 * POST /orders/processed/prune forgets old idempotency records (admin.ts).
 * Env: JETWAY_PUBLISH_URL (required), JETWAY_PUBLISH_TOKEN and/or JETWAY_PUBLISH_SECRET (as the bridge's
 * http.publish_token / publish_secret), JETWAY_ADMIN_TOKEN (guards both).
 */
export function createOrder(deps: OrderDeps): JetwayFunction {
  const fn = defineFunction({ name: "order" });
  const publish = coalescingPublisher();
  /** Folds a batch of one event type into the orders (one transaction), announcing what became final. */
  const record =
    <T extends EventType>(toEvent: (data: EventData<T>) => OrderEvent): BatchHandler<T> =>
    async (events, ctx) => {
      const results = await recordOrderEvents(
        deps.db(ctx.c),
        events.map((e) => {
          // Every payment and inventory contract names its order and carries a message_id.
          const { order_id, message_id } = e.data as { order_id: string; message_id: string };
          return { order_id, message_id, event: toEvent(e.data) };
        }),
      );
      let announced = 0;
      for (const [i, event] of events.entries()) {
        const result = results[i] as RecordResult;
        if (!result.ok) {
          ctx.failWith(event.id, result.error);
          continue;
        }
        const { order, announce } = result;
        ctx.log.debug({ order_id: order.id, status: order.status, event: event.subject }, "order updated");
        if (!announce) continue;
        announced++;
        await announceFinal(order, ctx.emitterFor(event.id));
      }
      ctx.log.info({ events: events.length, announced }, "orders updated");
    };

  fn.handleBatch(
    PaymentCompleted,
    record((d) => ({ kind: "payment_completed", payment_id: d.payment_id })),
  )
    .handleBatch(
      PaymentFailed,
      record((d) => ({ kind: "payment_failed", reason: d.reason })),
    )
    .handleBatch(
      InventoryReserved,
      record((d) => ({ kind: "inventory_reserved", reservation_id: d.reservation_id })),
    )
    .handleBatch(
      InventoryRejected,
      record((d) => ({ kind: "inventory_rejected", reason: d.reason })),
    )
    .handleBatch(
      InventoryReleased,
      record(() => ({ kind: "inventory_released" })),
    );

  const app = fn.app;
  app.post("/orders", async (c) => {
    const parsed = parseOrderRequest(await readText(c));
    if (!parsed.ok) return c.json(parsed.body, parsed.status);
    const key = c.req.header("idempotency-key");
    if (key !== undefined && (key.length === 0 || key.length > 255)) {
      return c.json(
        {
          error: { code: "invalid_request", message: "Idempotency-Key must be 1-255 characters", fields: [] },
        },
        400,
      );
    }
    const hash = await requestHash(parsed.value);
    const { order, created } = await insertOrder(deps.db(c), {
      request: parsed.value,
      total_minor: parsed.total_minor,
      request_hash: hash,
      idempotency_key: key,
      event: (orderId) => ({
        message_id: ulid(),
        occurred_at: new Date().toISOString(),
        order_id: orderId,
        customer_id: parsed.value.customer_id,
        items: parsed.value.items,
        total_minor: parsed.total_minor,
        currency: parsed.value.currency,
        payment_method: "card",
        payment_token: parsed.value.payment_token,
      }),
    });
    if (!created && order.request_hash !== hash) {
      return c.json(
        {
          error: {
            code: "idempotency_key_reused",
            message: "Idempotency-Key was used for a different order",
          },
        },
        422,
      );
    }
    if (!created) c.header("Idempotent-Replayed", "true");
    if (order.status === "pending_publish") {
      try {
        await publishOrder(c, deps, publish, order);
      } catch (err) {
        if (!(err instanceof PublishError)) throw err;
        fn.log.warn({ order_id: order.id, err: err.message }, "order stored, event not yet published");
        c.header("Retry-After", String(PUBLISH_RETRY_AFTER_S));
        return c.json(
          {
            error: {
              code: "publish_unavailable",
              message: "order stored; retry with the same Idempotency-Key",
            },
            order_id: order.id,
            status: "pending_publish",
          },
          503,
        );
      }
    }
    return c.json({ order_id: order.id, status: "placed" }, 202);
  });

  app.get("/orders/:id", async (c) => {
    const order = await loadOrder(deps.db(c), c.req.param("id"));
    if (!order) return c.json({ error: { code: "not_found", message: "no such order" } }, 404);
    return c.json(orderView(order));
  });

  app.post("/orders/outbox/flush", async (c) => {
    const refused = refuseWithoutAdmin(c);
    if (refused) return refused;
    const asked = Number(c.req.query("older_than_s") ?? 10);
    // Younger orders may still be mid-request: their own POST is about to publish them.
    const olderThanS = Number.isFinite(asked) && asked >= 0 ? asked : 10;
    const pending = await unpublished(deps.db(c), olderThanS, 100);
    // One ingress request carries them all; an order whose event was refused stays for the next flush.
    const settled = await Promise.allSettled(pending.map((order) => publishOrder(c, deps, publish, order)));
    let published = 0;
    const failed: string[] = [];
    for (const [i, s] of settled.entries()) {
      if (s.status === "fulfilled") published++;
      else if (s.reason instanceof PublishError) failed.push((pending[i] as Order).id);
      else throw s.reason;
    }
    await noteUnpublished(deps.db(c), failed);
    return c.json({ pending: pending.length, published });
  });

  app.post("/orders/processed/prune", (c) => refuseWithoutAdmin(c) ?? pruneApplied(c, deps.db(c)));

  return fn;
}
