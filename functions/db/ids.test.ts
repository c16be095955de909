import { isValid } from "ulid";
import { describe, expect, it } from "vitest";
import { newId, ulid, uuidFrom } from "./ids.ts";

describe("ids", () => {
  it("ulid() gives valid, distinct, time-ordered ULIDs across pool refills", () => {
    const ids = Array.from({ length: 100 }, () => ulid());
    for (const id of ids) expect(isValid(id)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(newId("ord")).toMatch(/^ord_[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  it("uuidFrom is a stable version-8 UUID per name", async () => {
    const a = await uuidFrom("inventory.reserved:ord_1");
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(await uuidFrom("inventory.reserved:ord_1")).toBe(a);
    expect(await uuidFrom("inventory.reserved:ord_2")).not.toBe(a);
  });
});
