import { Writable } from "node:stream";
import type { EventInput } from "../../schemas/define.ts";
import type { OrderCreated } from "../../schemas/orders.ts";
import { createFunctionLogger, type Logger } from "./logger.ts";

export function order(
  overrides: Partial<EventInput<typeof OrderCreated>> = {},
): EventInput<typeof OrderCreated> {
  return {
    message_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    occurred_at: "2026-01-01T00:00:00Z",
    order_id: "o-1",
    customer_id: "c-1",
    items: [{ sku: "SKU-1", quantity: 2, unit_price_minor: 1250 }],
    total_minor: 2500,
    currency: "EUR",
    payment_token: "tok_visa",
    ...overrides,
  };
}

/** A function logger whose JSON lines land in `lines`, so tests can assert on log fields. */
export function capturingLogger(level = "info"): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: createFunctionLogger("test-fn", { level, destination: stream }), lines };
}
