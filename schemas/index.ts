import type { EventType } from "./define.ts";
import { InventoryRejected, InventoryReleased, InventoryReserved } from "./inventory.ts";
import { OrderCancelled, OrderConfirmed, OrderCreated } from "./orders.ts";
import { PaymentCompleted, PaymentFailed } from "./payments.ts";

export * from "./common.ts";
export * from "./define.ts";
export * from "./inventory.ts";
export * from "./orders.ts";
export * from "./payments.ts";

/** Every published contract; `npm run schemas` writes one JSON Schema per entry. */
export const allEvents: readonly EventType[] = [
  OrderCreated,
  OrderConfirmed,
  OrderCancelled,
  PaymentCompleted,
  PaymentFailed,
  InventoryReserved,
  InventoryRejected,
  InventoryReleased,
];
