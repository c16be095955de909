import { z } from "zod";
import { amountMinor, currency, entityId, envelope, lineItem } from "./common.ts";
import { defineEvent } from "./define.ts";

export const OrderCreated = defineEvent(
  "orders.created.v1",
  z.object({
    ...envelope,
    order_id: entityId,
    customer_id: entityId,
    items: z.array(lineItem).min(1),
    total_minor: amountMinor,
    currency,
    payment_method: z.enum(["card"]).default("card"),
    /** Opaque token from the card vault; the payment gateway charges it. Never a card number. */
    payment_token: z.string().min(1).max(256),
  }),
);

/** Stock is held and the charge succeeded: the order is final. */
export const OrderConfirmed = defineEvent(
  "orders.confirmed.v1",
  z.object({
    ...envelope,
    order_id: entityId,
    customer_id: entityId,
    payment_id: entityId,
    reservation_id: entityId,
  }),
);

/** The order will not be fulfilled; `reason` comes from the step that refused it. */
export const OrderCancelled = defineEvent(
  "orders.cancelled.v1",
  z.object({
    ...envelope,
    order_id: entityId,
    customer_id: entityId,
    reason: z.string().min(1).max(200),
  }),
);
