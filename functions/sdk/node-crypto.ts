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
