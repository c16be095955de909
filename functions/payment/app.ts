import { OrderCreated, PaymentCompleted, PaymentFailed } from "../../schemas/index.ts";
import type { Db, DbProvider } from "../db/client.ts";
import { requireVar } from "../db/env.ts";
import { uuidFrom } from "../db/ids.ts";
import { defineFunction, type Emit, type JetwayFunction } from "../sdk/index.ts";
import { chargeOnce, type Payment } from "./charge.ts";
import { charge } from "./gateway.ts";

export interface PaymentDeps {
  db: DbProvider;
  /** For tests and custom transports; default global fetch. */
  fetch?: typeof fetch;
}

/**
 * payment: orders.created.v1 → one gateway charge → payments.completed.v1 or payments.failed.v1.
 * Env: GATEWAY_URL (required), GATEWAY_TIMEOUT_MS (default 10000).
 */
export function createPayment(deps: PaymentDeps): JetwayFunction {
  return defineFunction({ name: "payment" }).handle(OrderCreated, async (event, ctx) => {
    const db: Db = deps.db(ctx.c);
    const { order_id } = event.data;
    const gateway = {
      baseUrl: requireVar(ctx.env, "GATEWAY_URL"),
      timeoutMs: Number(ctx.env.GATEWAY_TIMEOUT_MS ?? 10_000),
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
    };
    const payment = await chargeOnce(db, event.data, (key, input) => charge(gateway, key, input));
    ctx.log.info({ order_id, payment_id: payment.id, status: payment.status }, "payment settled");
    await emitOutcome(payment, event.data.customer_id, ctx.emit);
  });
}

/** The outcome event of a settled payment; the same payment always yields the identical event. */
async function emitOutcome(payment: Payment, customerId: string, emit: Emit): Promise<void> {
  const common = {
    occurred_at: payment.updated_at.toISOString(),
    order_id: payment.order_id,
    customer_id: customerId,
    amount_minor: payment.amount_minor,
    currency: payment.currency,
  };
  // One outcome per order, so both kinds share the Nats-Msg-Id: the first one published wins.
  const id = `payments:${payment.order_id}`;
  if (payment.status === "succeeded" && payment.gateway_charge_id) {
    const message_id = await uuidFrom(`payments.completed:${payment.order_id}`);
    emit(
      PaymentCompleted,
      { ...common, message_id, payment_id: payment.id, gateway_charge_id: payment.gateway_charge_id },
      { id },
    );
    return;
  }
  const message_id = await uuidFrom(`payments.failed:${payment.order_id}`);
  emit(PaymentFailed, { ...common, message_id, reason: payment.failure_reason ?? "card_declined" }, { id });
}
