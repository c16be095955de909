import { createHmac } from "node:crypto";
import { type DeliveryIdentity, deliveryPrefix } from "../functions/sdk/contract.ts";

const v1Of = (secret: string, t: string, body: Uint8Array) =>
  createHmac("sha256", secret).update(t).update(".").update(body).digest("hex");

/**
 * Signs a batch body exactly as `signPayload()` in functions/sdk/contract.ts does
 * (`t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), but synchronously with node:crypto:
 * WebCrypto's async importKey + sign per message costs far more on the hot path.
 */
export function signBody(secret: string, body: Uint8Array, nowS = Math.floor(Date.now() / 1000)): string {
  const t = String(nowS);
  return `t=${t},v1=${v1Of(secret, t, body)}`;
}

/** Signs a single delivery as `signDelivery()` in functions/sdk/contract.ts does: v1, and v2 over id and type. */
export function signDeliveryBody(
  secret: string,
  identity: DeliveryIdentity,
  body: Uint8Array,
  nowS = Math.floor(Date.now() / 1000),
): string {
  const t = String(nowS);
  const v2 = createHmac("sha256", secret).update(deliveryPrefix(nowS, identity)).update(body).digest("hex");
  return `t=${t},v1=${v1Of(secret, t, body)},v2=${v2}`;
}
