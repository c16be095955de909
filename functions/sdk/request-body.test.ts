import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreated } from "../../schemas/orders.ts";
import { defineFunction } from "./define-function.ts";
import { capturingLogger, order } from "./fixtures.test-helpers.ts";
import { type NodeFunctionServer, serveNode } from "./node.ts";
import { readBody, readText } from "./request-body.ts";
import { batchEvent, invoke, invokeBatch, type RequestTarget } from "./testing.ts";

const SECRET = "body-secret";
const seen: string[] = [];
let served: NodeFunctionServer;
let base: string;
let app: RequestTarget;

/** Sends what the test helpers build to the real server, the body split into three chunks (no length). */
const overHttp: RequestTarget = {
  request(path, init) {
    const text = String(init?.body ?? "");
    const third = Math.ceil(text.length / 3);
    const parts = [text.slice(0, third), text.slice(third, 2 * third), text.slice(2 * third)];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(new TextEncoder().encode(part));
        controller.close();
      },
    });
    return fetch(`${base}${path}`, { ...init, body, duplex: "half" } as RequestInit);
  },
};

beforeAll(async () => {
  const { log } = capturingLogger();
  const fn = defineFunction({ name: "body-test", logger: log, secret: () => SECRET }).handle(
    OrderCreated,
    async (event) => {
      seen.push(event.data.order_id);
    },
  );
  app = fn.app;
  fn.app.post("/echo", async (c) => {
    const first = await readText(c);
    // A second read gets the same bytes, not an exhausted stream.
    const again = await readBody(c);
    return c.json({ text: first, bytes: again.length });
  });
  fn.app.post("/then-hono", async (c) => {
    const text = await readText(c);
    const json = (await c.req.json()) as unknown;
    return c.json({ text, json });
  });
  fn.app.post("/hono-first", async (c) => {
    const json = (await c.req.json()) as unknown;
    const text = await readText(c);
    return c.json({ text, json });
  });
  served = serveNode(fn.app, { port: 0, hostname: "127.0.0.1", logger: log });
  base = `http://127.0.0.1:${(await served.ready).port}`;
});

afterAll(async () => {
  await served?.close();
});

describe("request bodies read from Node's own request (serveNode)", () => {
  it("checks the signature over a body that arrived in chunks, then hands the event over", async () => {
    const res = await invoke(overHttp, OrderCreated, order({ order_id: "ord-chunked" }), { secret: SECRET });
    expect(res.status).toBe(200);
    expect(seen).toContain("ord-chunked");
    const forged = await invoke(overHttp, OrderCreated, order({ order_id: "ord-forged" }), {
      secret: "not-the-secret",
    });
    expect(forged.status).toBe(401);
    expect(seen).not.toContain("ord-forged");
  });

  it("takes a batch the same way", async () => {
    const items = ["ord-b1", "ord-b2"].map((id) =>
      batchEvent(`m-${id}`, OrderCreated, order({ order_id: id })),
    );
    const res = await invokeBatch(overHttp, items, { secret: SECRET });
    expect(res.status).toBe(200);
    expect(seen).toEqual(expect.arrayContaining(["ord-b1", "ord-b2"]));
  });

  it("readText gives a route the whole body, and again on a second read", async () => {
    const text = `{"hello":"${"é".repeat(40_000)}"}`;
    const res = await overHttp.request("/echo", { method: "POST", body: text });
    expect(await res.json()).toEqual({ text, bytes: Buffer.byteLength(text) });
  });

  it("refuses a body past JETWAY_MAX_BODY_BYTES with 413, chunked or with a length, and reads no further", async () => {
    process.env.JETWAY_MAX_BODY_BYTES = "100000";
    try {
      const big = "x".repeat(300_000);
      const chunked = await overHttp.request("/echo", { method: "POST", body: big });
      expect(chunked.status).toBe(413);
      expect(await chunked.text()).toBe("request body over 100000 bytes (JETWAY_MAX_BODY_BYTES)");
      const withLength = await fetch(`${base}/echo`, { method: "POST", body: big });
      expect(withLength.status).toBe(413);
      // In tests and on Workers or Lambda, from the platform's Request.
      const res = await invokeBatch(app, big, { secret: SECRET, env: { JETWAY_MAX_BODY_BYTES: "1000" } });
      expect(res.status).toBe(413);
    } finally {
      delete process.env.JETWAY_MAX_BODY_BYTES;
    }
  });

  it("refuses an unsigned delivery before reading its body", async () => {
    const res = await overHttp.request("/events", { method: "POST", body: "x".repeat(1_000_000) });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain("missing x-jetway-signature header");
  });

  it("mixes with hono's own body readers in either order", async () => {
    const text = '{"a":[1,2,3],"b":"x"}';
    for (const path of ["/then-hono", "/hono-first"]) {
      const res = await overHttp.request(path, { method: "POST", body: text });
      expect(await res.json()).toEqual({ text, json: { a: [1, 2, 3], b: "x" } });
    }
  });
});
