import { createHmac } from "node:crypto";

/**
 * Signs a request body exactly as `signPayload()` in functions/sdk/contract.ts does
 * (`t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), but synchronously with node:crypto:
 * WebCrypto's async importKey + sign per message costs far more on the hot path.
 */
export function signBody(secret: string, body: Uint8Array, nowS = Math.floor(Date.now() / 1000)): string {
  const t = String(nowS);
  const hex = createHmac("sha256", secret).update(t).update(".").update(body).digest("hex");
  return `t=${t},v1=${hex}`;
}
