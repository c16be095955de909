import { expect, it } from "vitest";
import { sha256, toHex } from "./hashing.ts";

it("sha256 agrees with WebCrypto", async () => {
  const text = "payments.completed:ord_1 ✓";
  const web = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  expect(toHex(await sha256(text))).toBe(toHex(web));
});
