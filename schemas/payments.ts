import { z } from "zod";
import { amountMinor, currency, entityId, envelope } from "./common.ts";
import { defineEvent } from "./define.ts";

export const PaymentCompleted = defineEvent(
  "payments.completed.v1",
  z.object({
    ...envelope,
    order_id: entityId,
    customer_id: entityId.optional(),
    payment_id: entityId,
    amount_minor: amountMinor,
    currency,
    gateway_charge_id: z.string().min(1).max(128),
  }),
);

export const PaymentFailed = defineEvent(
  "payments.failed.v1",
  z.object({
    ...envelope,
    order_id: entityId,
    customer_id: entityId.optional(),
    /** Machine-readable, e.g. "card_declined", "insufficient_funds", "expired_card". */
    reason: z
      .string()
      .regex(/^[a-z][a-z0-9_]*$/, "snake_case code")
      .max(64),
    amount_minor: amountMinor,
    currency,
  }),
);
