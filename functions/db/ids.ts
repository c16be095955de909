import { ulid as ulidWith } from "ulid";
import { sha256, toHex } from "../sdk/hashing.ts";

/*
 * ulid's default source calls crypto.getRandomValues once per character (16 per id); a pool filled 256
 * bytes at a time gives the same randomness for a fraction of the calls. Filled lazily: Workers allow no
 * random values at start-up.
 */
const pool = new Uint8Array(256);
let used = pool.length;
const pooledRandom = (): number => {
  if (used === pool.length) {
    crypto.getRandomValues(pool);
    used = 0;
  }
  // 256 / 32 symbols: every character equally likely.
  return (pool[used++] as number) / 256;
};

/** A ULID (time-sortable, 80 random bits). */
export const ulid = (): string => ulidWith(undefined, pooledRandom);

/** A sortable entity id with a type prefix, e.g. `ord_01J…`. */
export const newId = (prefix: "ord" | "pay" | "res"): string => `${prefix}_${ulid()}`;

/**
 * A UUID (version 8, RFC 9562) derived from `name` by SHA-256. Emitted events get their message_id this
 * way from a stable name like `payments.completed:<order_id>`, so re-emitting after a redelivery yields
 * the very same event and consumers that deduplicate on message_id see it once even outside JetStream's
 * duplicate window.
 */
export async function uuidFrom(name: string): Promise<string> {
  const b = (await sha256(name)).subarray(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x80;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = toHex(b);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
