import { expect, it } from "vitest";
import { sha256, toHex } from "./hashing.ts";

it("sha256 agrees with WebCrypto", async () => {
  const text = "payments.completed:ord_1 ✓";
  const web = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  expect(toHex(await sha256(text))).toBe(toHex(web));
});

it("toHex writes every byte as two lower-case hex digits, from a view or a buffer", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const expected = Buffer.from(all).toString("hex");
  expect(toHex(all)).toBe(expected);
  expect(toHex(all.buffer)).toBe(expected);
  expect(toHex(all.subarray(250, 253))).toBe("fafbfc");
  expect(toHex(new Uint8Array(0))).toBe("");
});
