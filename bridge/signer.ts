import { createHmac } from "node:crypto";
import { batchPrefix, type DeliveryIdentity, deliveryPrefix } from "../functions/sdk/contract.ts";

const hmac = (secret: string, prefix: string, body: Uint8Array) =>
  createHmac("sha256", secret).update(prefix).update(body).digest("hex");

/**
 * Signs a batch body exactly as `signBatch()` in functions/sdk/contract.ts does (`t=<unix s>,v1=<hex
 * HMAC-SHA256 of "<t>.<body>">,b1=<hex HMAC-SHA256 of "batch\n<t>\n<body>">`), but synchronously with
 * node:crypto: WebCrypto's async importKey + sign per request costs far more on the hot path.
 */
export function signBody(secret: string, body: Uint8Array, nowS = Math.floor(Date.now() / 1000)): string {
  return `t=${nowS},v1=${hmac(secret, `${nowS}.`, body)},b1=${hmac(secret, batchPrefix(nowS), body)}`;
}

/** Signs a single delivery as `signDelivery()` in functions/sdk/contract.ts does: v2, over id, type and body. */
export function signDeliveryBody(
  secret: string,
  identity: DeliveryIdentity,
  body: Uint8Array,
  nowS = Math.floor(Date.now() / 1000),
): string {
  return `t=${nowS},v2=${hmac(secret, deliveryPrefix(nowS, identity), body)}`;
}
