/**
 * The function SDK: stateless Hono handlers fed by the jetway bridge.
 *
 * @example
 * import { defineFunction } from "jetway/function";
 * import { OrderCreated, PaymentCompleted } from "jetway/schemas";
 * import { gateway } from "./gateway.ts"; // your own client
 *
 * export const payment = defineFunction({ name: "payment" }).handle(OrderCreated, async (event, ctx) => {
 *   ctx.log.info({ order_id: event.data.order_id }, "charging");
 *   const charge = await gateway.charge(event.data.payment_token, event.data.total_minor); // may throw RetryableError
 *   ctx.emit(PaymentCompleted, { message_id: charge.id, occurred_at: new Date().toISOString(), order_id: event.data.order_id,
 *     payment_id: charge.id, amount_minor: event.data.total_minor, currency: event.data.currency,
 *     gateway_charge_id: charge.gatewayId }, { id: `payment:${event.data.order_id}` });
 * });
 * export default payment.app; // Workers; Node: serveNode(payment.app, { port: 3000 }); Lambda: handle(payment.app)
 */
export type { EventData, EventInput, EventType } from "../../schemas/define.ts";
export { defineEvent } from "../../schemas/define.ts";
export { DeliveryError } from "./cloudevent.ts";
export { Coalescer, type CoalescerOptions } from "./coalesce.ts";
export * from "./contract.ts";
export { defineFunction, type FunctionOptions, type JetwayEnv, JetwayFunction } from "./define-function.ts";
export { EmitValidationError, type ErrorBody, InvalidEventError, RetryableError } from "./errors.ts";
export { createFunctionLogger, type FunctionLoggerOptions, type Logger } from "./logger.ts";
export { mapLimit } from "./map-limit.ts";
export { classifyError, type ErrorOutcome } from "./outcome.ts";
export {
  createPublisher,
  type IngressEvent,
  PublishError,
  type Publisher,
  type PublishOptions,
  type PublishTarget,
  publishEvents,
  type TypedEvent,
} from "./publish.ts";
export { readBody, readText } from "./request-body.ts";
export type { BatchFailure } from "./run.ts";
export type * from "./types.ts";
export { requestVars } from "./vars.ts";
