import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { OrderCreated } from "../../schemas/index.ts";
import { batchEvent, invokeBatch } from "../sdk/testing.ts";
import { createAudit } from "./app.ts";
import { DirStore } from "./dir-store.ts";
import { entryKey } from "./entry.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jetway-audit-utf8-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("a payload that is not valid UTF-8 is not logged altered as if published", async () => {
  const store = new DirStore(join(dir, "utf8"));
  const audit = createAudit({ store: () => store });
  const text = JSON.stringify({
    message_id: "01J00000000000000000000000",
    occurred_at: new Date(0).toISOString(),
    order_id: "ord_1",
    customer_id: "cus_XX",
    items: [{ sku: "sku-1", quantity: 1, unit_price_minor: 100 }],
    total_minor: 100,
    currency: "EUR",
    payment_token: "tok_visa",
  });
  const bytes = Buffer.from(text);
  const at = bytes.indexOf("XX");
  bytes[at] = 0xff; // invalid UTF-8 inside a string: the bridge sends such a payload as data_base64
  bytes[at + 1] = 0xfe;
  const item = batchEvent("m1", OrderCreated, undefined, { jetwaystream: "ORDERS", jetwayseq: 1 });
  delete item.data;
  item.data_base64 = bytes.toString("base64");
  const res = await invokeBatch(audit.app, [item], { env: { JETWAY_LOG_LEVEL: "silent" } });
  const body = (await res.json()) as { failures: unknown[] };
  const logged = await store.get(entryKey("ORDERS", 1));
  // Either dead-lettered, or logged byte for byte: not silently rewritten to U+FFFD.
  expect({
    failures: body.failures.length,
    logged: logged?.includes("\ufffd") ? "altered (U+FFFD)" : logged,
  }).toEqual({ failures: 1, logged: undefined });
});
