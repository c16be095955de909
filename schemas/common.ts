import { z } from "zod";

/** Fields and value types every contract shares. */

/** Unique per event; consumers deduplicate on it. ULID or UUID. */
export const messageId = z.union([z.ulid(), z.uuid()]).describe("ULID or UUID, unique per event");

export const occurredAt = z.iso.datetime({ offset: true }).describe("when the fact happened (ISO 8601)");

/** Money is integer minor units (cents) plus an ISO 4217 code — never a float. */
export const amountMinor = z.number().int().min(0).describe("integer minor units, e.g. cents");
export const currency = z
  .string()
  .regex(/^[A-Z]{3}$/, "ISO 4217 code, three upper-case letters")
  .describe("ISO 4217 currency code");

export const entityId = z.string().min(1).max(128);
export const sku = z.string().min(1).max(64);

export const lineItem = z.object({
  sku,
  quantity: z.number().int().min(1),
  unit_price_minor: amountMinor,
});

/** Fields every event starts with. */
export const envelope = {
  message_id: messageId,
  occurred_at: occurredAt,
};
