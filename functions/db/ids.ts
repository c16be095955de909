import { ulid } from "ulid";

/** A sortable entity id with a type prefix, e.g. `ord_01J…`. */
export const newId = (prefix: "ord" | "pay" | "res"): string => `${prefix}_${ulid()}`;

/**
 * A UUID (version 8, RFC 9562) derived from `name` by SHA-256. Emitted events get their message_id this
 * way from a stable name like `payments.completed:<order_id>`, so re-emitting after a redelivery yields
 * the very same event and consumers that deduplicate on message_id see it once even outside JetStream's
 * duplicate window.
 */
export async function uuidFrom(name: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(name)));
  const b = digest.subarray(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x80;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
