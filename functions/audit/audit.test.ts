import { execFile } from "node:child_process";
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import S3rver from "s3rver";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EventType,
  InventoryReleased,
  InventoryReserved,
  OrderCreated,
  PaymentCompleted,
  PaymentFailed,
} from "../../schemas/index.ts";
import { batchEvent, invoke, invokeBatch } from "../sdk/testing.ts";
import { createAudit } from "./app.ts";
import { DirStore } from "./dir-store.ts";
import { entryKey, type ObjectStore } from "./entry.ts";
import { readLog, replay } from "./replay.ts";
import { S3Store } from "./s3-store.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jetway-audit-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const env = { JETWAY_LOG_LEVEL: "silent" };
const at = (n: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();

/** A small history: A confirmed, B cancelled by a declined card (stock released), C still waiting. */
function history(stream: string) {
  const [a, b, c] = [`ord_${ulid()}`, `ord_${ulid()}`, `ord_${ulid()}`];
  const created = (order_id: string) => ({
    order_id,
    customer_id: "cus_1",
    items: [{ sku: "sku-1", quantity: 1, unit_price_minor: 100 }],
    total_minor: 100,
    currency: "EUR",
    payment_token: "tok_visa",
  });
  const steps: [EventType, Record<string, unknown>][] = [
    [OrderCreated, created(a)],
    [OrderCreated, created(b)],
    [InventoryReserved, { order_id: b, reservation_id: "res_b", items: [{ sku: "sku-1", quantity: 1 }] }],
    [
      PaymentCompleted,
      { order_id: a, payment_id: "pay_a", amount_minor: 100, currency: "EUR", gateway_charge_id: "ch_a" },
    ],
    [PaymentFailed, { order_id: b, reason: "card_declined", amount_minor: 100, currency: "EUR" }],
    [InventoryReserved, { order_id: a, reservation_id: "res_a", items: [{ sku: "sku-1", quantity: 1 }] }],
    [
      InventoryReleased,
      {
        order_id: b,
        reservation_id: "res_b",
        items: [{ sku: "sku-1", quantity: 1 }],
        reason: "payment_failed",
      },
    ],
    [OrderCreated, created(c)],
  ];
  const events = steps.map(([type, data], i) => ({
    type,
    data: { message_id: ulid(), occurred_at: at(i), ...data },
    seq: i + 1,
    stream,
    time: at(i),
  }));
  return { a, b, c, events };
}

async function feed(store: ObjectStore, events: ReturnType<typeof history>["events"]) {
  const audit = createAudit({ store: () => store });
  for (const e of events) {
    const res = await invoke(audit.app, e.type, e.data as never, {
      id: e.data.message_id,
      stream: e.stream,
      seq: e.seq,
      env,
      headers: { "ce-time": e.time },
    });
    expect(res.status).toBe(200);
  }
  return audit;
}

describe("audit log in a directory", () => {
  it("writes each message once; a redelivery leaves the entry untouched", async () => {
    const store = new DirStore(join(dir, "once"));
    const { events } = history("ORDERS");
    const audit = await feed(store, events.slice(0, 1));
    const first = events[0];
    if (!first) throw new Error("no event");
    const key = entryKey("ORDERS", 1);
    const before = (await store.get(key)) ?? "";
    expect(JSON.parse(before)).toMatchObject({
      subject: "orders.created.v1",
      stream: "ORDERS",
      seq: 1,
      time: at(0),
    });
    expect(await store.putIfAbsent(key, "something else")).toBe(false);
    const again = await invoke(audit.app, first.type, first.data as never, {
      id: first.data.message_id,
      stream: "ORDERS",
      seq: 1,
      delivery: 2,
      env,
      headers: { "ce-time": first.time },
    });
    expect(again.status).toBe(200);
    expect(await store.get(key)).toBe(before);
    expect(await store.list()).toEqual([key]);
    // A fresh writer (a restarted process) knows the key from the directory.
    expect(await new DirStore(store.root).putIfAbsent(key, "something else")).toBe(false);
  });

  it("stores each event's data as published: fields this contract does not know, and no defaults", async () => {
    const store = new DirStore(join(dir, "as-published"));
    const audit = createAudit({ store: () => store });
    // A newer producer added optional fields, as EVOLUTION.md allows within a version.
    const { events } = history("ORDERS");
    const [one, two] = events.slice(0, 2).map((e) => ({
      ...e.data,
      gift_note: `note ${e.seq}`,
      items: [{ sku: "sku-1", quantity: 1, unit_price_minor: 100, gift_wrap: true }],
    }));
    const single = await invoke(audit.app, OrderCreated, one as never, { stream: "ORDERS", seq: 1, env });
    expect(single.status).toBe(200);
    const batch = await invokeBatch(
      audit.app,
      [batchEvent("b", OrderCreated, two, { jetwaystream: "ORDERS", jetwayseq: 2 })],
      { env },
    );
    expect(await batch.json()).toMatchObject({ failures: [] });
    for (const [seq, published] of [
      [1, one],
      [2, two],
    ] as const) {
      const entry = JSON.parse((await store.get(entryKey("ORDERS", seq))) ?? "{}");
      expect(entry.data).toEqual(published);
      expect(entry.data).not.toHaveProperty("payment_method");
    }
  });

  it("entries put at once go out in one append; a key put twice at once is stored once", async () => {
    const store = new DirStore(join(dir, "together"));
    const [a, b] = [entryKey("S", 1), entryKey("S", 2)];
    expect(
      await Promise.all([
        store.putIfAbsent(a, "one"),
        store.putIfAbsent(b, "two"),
        store.putIfAbsent(a, "uno"),
      ]),
    ).toEqual([true, true, false]);
    const segments = (await readdir(join(store.root, "S"))).filter((n) => n.endsWith(".log"));
    expect(segments).toHaveLength(1);
    const text = await readFile(join(store.root, "S", segments[0] as string), "utf8");
    expect(text).toBe(`${a} 3\none\n${b} 3\ntwo\n`);
    expect(await store.get(a)).toBe("one");
    expect(await store.putIfAbsent(a, "again")).toBe(false);
  });

  it("appends to one segment per writer and ignores a torn last entry (a crash mid-append)", async () => {
    const store = new DirStore(join(dir, "torn"));
    expect(await store.putIfAbsent(entryKey("S", 1), "one\n")).toBe(true);
    expect(await store.putIfAbsent(entryKey("S", 2), "two\n")).toBe(true);
    const segments = (await readdir(join(store.root, "S"))).filter((f) => f.endsWith(".log"));
    expect(segments).toHaveLength(1);
    // The process dies halfway through its third append.
    await appendFile(join(store.root, "S", segments[0] ?? ""), `${entryKey("S", 3)} 40\n{"half":`);
    const restarted = new DirStore(store.root);
    expect(await restarted.list()).toEqual([entryKey("S", 1), entryKey("S", 2)]);
    expect(await restarted.get(entryKey("S", 3))).toBeUndefined();
    // Its message was never acknowledged: the redelivery writes it whole, in the new writer's segment.
    expect(await restarted.putIfAbsent(entryKey("S", 3), "three\n")).toBe(true);
    expect(await restarted.putIfAbsent(entryKey("S", 1), "again\n")).toBe(false);
    expect(await restarted.get(entryKey("S", 3))).toBe("three\n");
    expect(await restarted.get(entryKey("S", 1))).toBe("one\n");
  });

  it("two writers in one directory: a message both appended is read once", async () => {
    const root = join(dir, "writers");
    const [one, two] = [new DirStore(root), new DirStore(root)];
    expect(await two.putIfAbsent(entryKey("S", 1), "first\n")).toBe(true);
    // A redelivery reached the other writer, which read the directory before `one` wrote seq 2.
    expect(await one.putIfAbsent(entryKey("S", 2), "second\n")).toBe(true);
    expect(await two.putIfAbsent(entryKey("S", 2), "second\n")).toBe(true);
    expect(await one.putIfAbsent(entryKey("S", 1), "first\n")).toBe(false);
    expect(await new DirStore(root).list()).toEqual([entryKey("S", 1), entryKey("S", 2)]);
    expect(await one.get(entryKey("S", 2))).toBe("second\n");
  });

  it("remembers the last rememberedKeys keys per directory; an older redelivery is appended again and read once", async () => {
    const store = new DirStore(join(dir, "bounded"), { rememberedKeys: 2 });
    const [k1, k2, k3] = [1, 2, 3].map((seq) => entryKey("S", seq)) as [string, string, string];
    for (const key of [k1, k2, k3]) expect(await store.putIfAbsent(key, `${key} first\n`)).toBe(true);
    // k1 was forgotten when k3 came in; k2 and k3 are still known.
    expect(await store.putIfAbsent(k3, "again\n")).toBe(false);
    expect(await store.putIfAbsent(k2, "again\n")).toBe(false);
    expect(await store.putIfAbsent(k1, "again\n")).toBe(true);
    const readers = [store, new DirStore(store.root)];
    for (const reader of readers) {
      expect(await reader.list("S/")).toEqual([k1, k2, k3]);
      expect(await reader.get(k1)).toBe(`${k1} first\n`);
    }
    // A restarted writer reads the directory and keeps only the last keys read.
    const restarted = new DirStore(store.root, { rememberedKeys: 1 });
    expect(await restarted.putIfAbsent(entryKey("S", 4), "four\n")).toBe(true);
    expect(await restarted.putIfAbsent(entryKey("S", 4), "four again\n")).toBe(false);
    expect(() => new DirStore(store.root, { rememberedKeys: -1 })).toThrow(/rememberedKeys/);
  });

  it("reads entries stored one file each (the layout before segments) and never writes them again", async () => {
    const store = new DirStore(join(dir, "legacy"));
    await mkdir(join(store.root, "S"), { recursive: true });
    await writeFile(join(store.root, entryKey("S", 7)), "seven\n");
    expect(await store.putIfAbsent(entryKey("S", 7), "seven again\n")).toBe(false);
    expect(await store.putIfAbsent(entryKey("S", 8), "eight\n")).toBe(true);
    expect(await store.list("S/")).toEqual([entryKey("S", 7), entryKey("S", 8)]);
    expect(await store.get(entryKey("S", 7))).toBe("seven\n");
  });

  it("refuses a delivery without stream position (dead-letter)", async () => {
    const { events } = history("ORDERS");
    const audit = createAudit({ store: () => new DirStore(join(dir, "nopos")) });
    const e = events[0];
    if (!e) throw new Error("no event");
    const res = await invoke(audit.app, e.type, e.data as never, { stream: "", seq: 0, env });
    expect(res.status).toBe(422);
  });

  it("writes again after its directory was removed behind its back (the directory cache is not trusted)", async () => {
    const store = new DirStore(join(dir, "removed"));
    expect(await store.putIfAbsent(entryKey("S", 1), "one")).toBe(true);
    await rm(store.root, { recursive: true, force: true });
    expect(await store.putIfAbsent(entryKey("S", 2), "two")).toBe(true);
    expect(await store.list()).toEqual([entryKey("S", 2)]);
  });

  it("writes a batch side by side and fails only the message without a stream position", async () => {
    const store = new DirStore(join(dir, "batch"));
    const audit = createAudit({ store: () => store });
    const { events } = history("PAYMENTS");
    const items = events.map((e) =>
      batchEvent(e.data.message_id, e.type, e.data, {
        jetwaystream: e.stream,
        jetwayseq: e.seq,
        time: e.time,
      }),
    );
    const broken = events[0];
    if (!broken) throw new Error("no event");
    items.push(batchEvent(`${broken.data.message_id}-x`, broken.type, broken.data, { jetwayseq: 0 }));
    const res = await invokeBatch(audit.app, items, { env });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { failures: { id: string; dead_letter?: boolean }[] };
    expect(body.failures).toEqual([
      expect.objectContaining({ id: `${broken.data.message_id}-x`, dead_letter: true }),
    ]);
    expect(await store.list()).toEqual(events.map((e) => entryKey("PAYMENTS", e.seq)));
    // Delivered again (a retried batch): nothing is rewritten, nothing fails.
    const again = await invokeBatch(audit.app, items.slice(0, -1), { env });
    expect(((await again.json()) as { failures: unknown[] }).failures).toEqual([]);
    expect(await store.list()).toHaveLength(events.length);
  });

  it("replay rebuilds order statuses from the log, in order", async () => {
    const store = new DirStore(join(dir, "replay"));
    const { a, b, c, events } = history("ORDERS");
    // Delivered out of order and with duplicates: keys and timestamps restore the order.
    await feed(store, [...events].reverse());
    await feed(store, events.slice(0, 3));
    const model = await replay(store);
    expect(model.get(a)).toMatchObject({
      status: "confirmed",
      payment_status: "paid",
      inventory_status: "reserved",
    });
    expect(model.get(b)).toMatchObject({
      status: "cancelled",
      payment_status: "failed",
      inventory_status: "released",
      cancel_reason: "payment_card_declined",
    });
    expect(model.get(c)).toMatchObject({ status: "placed" });
    const { stdout } = await promisify(execFile)(process.execPath, [
      "functions/audit/replay.ts",
      "--dir",
      store.root,
    ]);
    const printed = JSON.parse(stdout) as Record<string, { status: string }>;
    expect([printed[a]?.status, printed[b]?.status, printed[c]?.status]).toEqual([
      "confirmed",
      "cancelled",
      "placed",
    ]);
    // A directory that holds no log is said so, not printed as no orders.
    const missing = join(store.root, "no-such-dir");
    const refused = await promisify(execFile)(process.execPath, [
      "functions/audit/replay.ts",
      "--dir",
      missing,
    ]).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(refused).toMatchObject({
      code: 2,
      stderr: `replay: no audit log at ${missing} (give --dir, or AUDIT_DIR)\n`,
    });
  });
});

describe("audit log in an S3-compatible bucket (s3rver)", () => {
  let server: S3rver;
  let store: S3Store;
  beforeAll(async () => {
    server = new S3rver({
      port: 0,
      address: "127.0.0.1",
      silent: true,
      directory: join(dir, "s3"),
      configureBuckets: [{ name: "audit", configs: [] }],
    });
    const address = await server.run();
    store = new S3Store({
      endpoint: `http://127.0.0.1:${address.port}`,
      bucket: "audit",
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it("stores signed entries and replays them", async () => {
    const { a, b, c, events } = history("S3ORDERS");
    await feed(store, events);
    await feed(store, events.slice(2, 4));
    const keys = await store.list("S3ORDERS/");
    expect(keys).toHaveLength(events.length);
    expect(keys[0]).toBe(entryKey("S3ORDERS", 1));
    expect(JSON.parse((await store.get(keys[0] ?? "")) ?? "{}")).toMatchObject({
      subject: "orders.created.v1",
    });
    expect(await store.get("S3ORDERS/missing.json")).toBeUndefined();
    const model = await replay(store);
    expect([model.get(a)?.status, model.get(b)?.status, model.get(c)?.status]).toEqual([
      "confirmed",
      "cancelled",
      "placed",
    ]);
  });

  it("an unreachable store is retryable (503)", async () => {
    const down = new S3Store({
      endpoint: "http://127.0.0.1:9",
      bucket: "x",
      accessKeyId: "k",
      secretAccessKey: "s",
    });
    const { events } = history("DOWN");
    const e = events[0];
    if (!e) throw new Error("no event");
    const audit = createAudit({ store: () => down });
    const res = await invoke(audit.app, e.type, e.data as never, { stream: "DOWN", seq: 1, env });
    expect(res.status).toBe(503);
  });
  it("lists keys with characters that need encoding as they were put (numeric entities too), and replays every one", async () => {
    const wrong: string[] = [];
    for (const stream of ["A(1)", "B!*'", "C~x", "D+E", "F&G", "H%20", 'I"J']) {
      const key = entryKey(stream, 1);
      expect(await store.putIfAbsent(key, `{"subject":"x","time":"t","stream":"s","seq":1}\n`)).toBe(true);
      expect(await store.get(key)).toBe(`{"subject":"x","time":"t","stream":"s","seq":1}\n`);
      const listed = await store.list(`${stream}/`);
      if (listed[0] !== key) wrong.push(`${key} listed as ${listed[0]}`);
    }
    const logged = (await readLog(store)).filter((e) => e.subject === "x").length;
    expect({ wrong, logged }).toEqual({ wrong: [], logged: 7 });
  });
});
