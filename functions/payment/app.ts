import { InventoryRejected, OrderCreated, PaymentCompleted, PaymentFailed } from "../../schemas/index.ts";
import type { DbProvider } from "../db/client.ts";
import { positiveIntVar, requireVar, type Vars } from "../db/env.ts";
import { uuidFrom } from "../db/ids.ts";
import { defineFunction, type Emit, type JetwayFunction } from "../sdk/index.ts";
import type { NodeFetchOptions } from "../sdk/node-fetch.ts";
import {
  CANCELLED_REASON,
  CHARGES_IN_FLIGHT,
  type ChargeResult,
  cancelPayment,
  chargeMany,
  type Payment,
} from "./charge.ts";
import { charge, type GatewayOptions, refund } from "./gateway.ts";

export interface PaymentDeps {
  db: DbProvider;
  /** The gateway's transport: the platform's fetch by default; Node hosts pass createNodeFetch() (sdk/node.ts). */
  fetch?: typeof fetch;
}

/**
 * payment: orders.created.v1 → one gateway charge → payments.completed.v1 or payments.failed.v1;
 * inventory.rejected.v1 → refund the charge (or make sure it never happens).
 * Env: GATEWAY_URL (required), GATEWAY_TIMEOUT_MS (default 10000), GATEWAY_CHARGES_IN_FLIGHT (per batch,
 * default 16: with a gateway taking L seconds a charge, one batch settles at most that many / L orders a
 * second, so a slower gateway needs more).
 */
export function createPayment(deps: PaymentDeps): JetwayFunction {
  const gateway = (env: Vars, timeoutMs = paymentSettings(env).timeoutMs): GatewayOptions => ({
    baseUrl: requireVar(env, "GATEWAY_URL"),
    timeoutMs,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });
  return (
    defineFunction({ name: "payment" })
      // A batch claims its payment rows in one statement and calls the gateway for several orders at once;
      // a single delivery is a batch of one.
      .handleBatch(OrderCreated, async (events, ctx) => {
        const { timeoutMs, chargesInFlight } = paymentSettings(ctx.env);
        const options = gateway(ctx.env, timeoutMs);
        const results = await chargeMany(
          deps.db(ctx.c),
          events.map((e) => e.data),
          (key, input) => charge(options, key, input),
          chargesInFlight,
        );
        const counts: Record<string, number> = {};
        for (const [i, event] of events.entries()) {
          const result = results[i] as ChargeResult;
          if (!result.ok) {
            ctx.failWith(event.id, result.error);
            counts.failed = (counts.failed ?? 0) + 1;
            continue;
          }
          const payment = result.payment;
          counts[payment.status] = (counts[payment.status] ?? 0) + 1;
          ctx.log.debug(
            { order_id: payment.order_id, payment_id: payment.id, status: payment.status },
            "payment settled",
          );
          await emitOutcome(payment, event.data, ctx.emitterFor(event.id));
        }
        ctx.log.info({ orders: events.length, ...counts }, "payments settled");
      })
      .handle(InventoryRejected, async (event, ctx) => {
        const options = gateway(ctx.env);
        const payment = await cancelPayment(deps.db(ctx.c), event.data.order_id, (key, chargeId) =>
          refund(options, key, chargeId),
        );
        // No refund contract exists yet: the outcome is recorded on the payment row and logged.
        ctx.log.info(
          { order_id: payment.order_id, status: payment.status, refund_id: payment.refund_id },
          "compensated",
        );
      })
  );
}

/**
 * The Node and Lambda hosts' gateway transport: GATEWAY_CONNECTIONS keep-alive connections (createNodeFetch's
 * 64 when unset). No more charges than that are open at once in one process, whatever
 * GATEWAY_CHARGES_IN_FLIGHT allows the batches it handles together.
 */
export function gatewayFetchOptions(env: Vars): NodeFetchOptions {
  // 0 only when unset: a set value below 1 is refused, naming the variable.
  const connections = positiveIntVar(env, "GATEWAY_CONNECTIONS", 0);
  return connections > 0 ? { connections } : {};
}

/** The payment function's numeric settings; InvalidConfigError names one that is set but unusable. */
export function paymentSettings(env: Vars): { timeoutMs: number; chargesInFlight: number } {
  return {
    timeoutMs: positiveIntVar(env, "GATEWAY_TIMEOUT_MS", 10_000),
    chargesInFlight: positiveIntVar(env, "GATEWAY_CHARGES_IN_FLIGHT", CHARGES_IN_FLIGHT),
  };
}

interface OrderFacts {
  customer_id: string;
  total_minor: number;
  currency: string;
}

/** The outcome event of a settled payment; the same payment always yields the identical event. */
async function emitOutcome(payment: Payment, order: OrderFacts, emit: Emit): Promise<void> {
  const common = {
    occurred_at: (payment.settled_at ?? payment.updated_at).toISOString(),
    order_id: payment.order_id,
    customer_id: order.customer_id,
    amount_minor: payment.amount_minor,
    currency: payment.currency,
  };
  // One outcome per order, so both kinds share the Nats-Msg-Id: the first one published wins.
  const id = `payments:${payment.order_id}`;
  if ((payment.status === "succeeded" || payment.status === "refunded") && payment.gateway_charge_id) {
    const message_id = await uuidFrom(`payments.completed:${payment.order_id}`);
    emit(
      PaymentCompleted,
      { ...common, message_id, payment_id: payment.id, gateway_charge_id: payment.gateway_charge_id },
      { id },
    );
    return;
  }
  const message_id = await uuidFrom(`payments.failed:${payment.order_id}`);
  if (payment.status === "cancelled") {
    // Never charged: the row holds no amount, the order does.
    const amounts = { amount_minor: order.total_minor, currency: order.currency };
    emit(PaymentFailed, { ...common, ...amounts, message_id, reason: CANCELLED_REASON }, { id });
    return;
  }
  emit(PaymentFailed, { ...common, message_id, reason: payment.failure_reason ?? "card_declined" }, { id });
}
