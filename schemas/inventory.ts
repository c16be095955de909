import { z } from "zod";
import { entityId, envelope, sku } from "./common.ts";
import { defineEvent } from "./define.ts";

const reservedItem = z.object({ sku, quantity: z.number().int().min(1) });

export const InventoryReserved = defineEvent(
  "inventory.reserved.v1",
  z.object({
    ...envelope,
    order_id: entityId,
    reservation_id: entityId,
    items: z.array(reservedItem).min(1),
  }),
);

export const InventoryRejected = defineEvent(
  "inventory.rejected.v1",
  z.object({
    ...envelope,
    order_id: entityId,
    /** e.g. "out_of_stock", "unknown_sku". */
    reason: z
      .string()
      .regex(/^[a-z][a-z0-9_]*$/, "snake_case code")
      .max(64),
    /** The SKUs that could not be reserved. */
    skus: z.array(sku).min(1),
  }),
);

/**
 * The order's stock ends released (payment failed or the order was cancelled): the reservation's items
 * were given back, or — when the release overtook the reservation — the order's items were never held.
 */
export const InventoryReleased = defineEvent(
  "inventory.released.v1",
  z.object({
    ...envelope,
    order_id: entityId,
    reservation_id: entityId,
    items: z.array(reservedItem).min(1),
    reason: z.string().min(1).max(200),
  }),
);
