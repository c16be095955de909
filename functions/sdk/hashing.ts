import type * as NodeCrypto from "node:crypto";

/**
 * node:crypto where the runtime offers it (Node, Workers with nodejs_compat), found without a static
 * import so the same module still bundles and runs where it does not. WebCrypto's HMAC and digest are
 * promise jobs on a worker thread; the synchronous node:crypto calls cost a fraction of that per
 * request. Undefined means: use WebCrypto.
 */
export const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.("node:crypto") as
  | Pick<typeof NodeCrypto, "createHash" | "createHmac">
  | undefined;

const encoder = new TextEncoder();

/** SHA-256 of a string: node:crypto where there is one, else WebCrypto. */
export async function sha256(text: string): Promise<Uint8Array> {
  if (nodeCrypto) return nodeCrypto.createHash("sha256").update(text).digest();
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** Lower-case hex of the bytes (a table lookup per byte: an order's request hash and ids go through it). */
export function toHex(bytes: Uint8Array | ArrayBuffer): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let hex = "";
  for (let i = 0; i < view.length; i++) hex += HEX[view[i] as number];
  return hex;
}
