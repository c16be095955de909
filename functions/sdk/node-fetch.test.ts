import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createNodeFetch } from "./node-fetch.ts";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

let server: Server;
let base: string;
const seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      if (req.url === "/json") {
        res.writeHead(201, [
          ["content-type", "application/json"],
          ["set-cookie", "a=1"],
          ["set-cookie", "b=2"],
        ]);
        res.end(JSON.stringify({ ok: true, echo: Buffer.concat(chunks).toString() }));
      } else if (req.url === "/empty") {
        res.writeHead(204).end();
      } else if (req.url === "/moved") {
        res.writeHead(307, { location: "/json" }).end();
      } else if (req.url === "/see-other") {
        res.writeHead(303, { location: "/json" }).end();
      } else if (req.url === "/gzip") {
        res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
        res.end(gzipSync(JSON.stringify({ zipped: true })));
      } else if (req.url === "/slow") {
        setTimeout(() => res.writeHead(200).end("late"), 500);
      } else {
        res.writeHead(404, { "retry-after": "3" }).end("nope");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const nodeFetch = createNodeFetch();
const globalFetch = vi.spyOn(globalThis, "fetch");
afterEach(() => globalFetch.mockClear());

describe("createNodeFetch", () => {
  it("POSTs a string body with plain headers and answers like fetch: status, headers, body", async () => {
    const res = await nodeFetch(new URL("/json", base), {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": "k-1" },
      body: '{"n":1}',
    });
    expect(res.status).toBe(201);
    expect(res.ok).toBe(true);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect(await res.json()).toEqual({ ok: true, echo: '{"n":1}' });
    expect(seen.at(-1)).toMatchObject({
      method: "POST",
      body: '{"n":1}',
      headers: { "idempotency-key": "k-1" },
    });
  });

  it("takes bytes, Headers and header pairs, and a bodyless status", async () => {
    await nodeFetch(`${base}/json`, {
      method: "put",
      headers: new Headers({ "x-a": "1" }),
      body: new TextEncoder().encode("bytes"),
    });
    expect(seen.at(-1)).toMatchObject({ method: "PUT", body: "bytes", headers: { "x-a": "1" } });
    await nodeFetch(`${base}/json`, { method: "POST", headers: [["x-b", "2"]], body: "" });
    expect(seen.at(-1)?.headers["x-b"]).toBe("2");
    const empty = await nodeFetch(`${base}/empty`);
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
  });

  it("reads a body the way fetch's Response does, with every reader, once", async () => {
    // Each reader on both fetches: the same answers, and the same refusal of a second read.
    const readers: ((r: Response) => Promise<unknown>)[] = [
      (r) => r.text(),
      (r) => r.json(),
      async (r) => new Uint8Array(await r.arrayBuffer()),
      (r) => (r as Response & { bytes(): Promise<Uint8Array> }).bytes(),
      async (r) => (await r.blob()).text(),
      (r) => new Response(r.body).text(),
      async (r) => [await r.clone().text(), await r.text()],
    ];
    const post = { method: "POST", body: "x" };
    for (const read of readers) {
      const [ours, theirs] = [await nodeFetch(`${base}/json`, post), await fetch(`${base}/json`, post)];
      expect(ours).toBeInstanceOf(Response);
      expect(ours.bodyUsed).toBe(false);
      expect(await read(ours)).toEqual(await read(theirs));
      expect(ours.bodyUsed).toBe(theirs.bodyUsed);
      await expect(ours.text()).rejects.toThrow(TypeError);
      // Once read, `body` is still a stream, as fetch's is: locked, and refusing to be read again.
      expect(ours.body?.locked).toBe(theirs.body?.locked);
      expect(ours.body).not.toBeNull();
      expect(ours.body).toBe(ours.body);
      expect(() => new Response(theirs.body)).toThrow(TypeError);
      expect(() => new Response(ours.body)).toThrow(TypeError);
    }
    // Headers read after the body, and a body never read, cost nothing and still answer.
    const late = await nodeFetch(`${base}/json`, post);
    expect(await late.json()).toEqual({ ok: true, echo: "x" });
    expect(late.headers.get("content-type")).toBe("application/json");
  });

  it("reads error statuses with their headers, and follows a redirect as fetch does", async () => {
    const missing = await nodeFetch(`${base}/nowhere`);
    expect([missing.status, missing.ok, missing.headers.get("retry-after"), await missing.text()]).toEqual([
      404,
      false,
      "3",
      "nope",
    ]);
    const moved = await nodeFetch(`${base}/moved`, { method: "POST", body: "again" });
    expect(moved.status).toBe(201);
    expect(((await moved.json()) as { echo: string }).echo).toBe("again");
    expect([moved.url, moved.redirected, moved.statusText]).toEqual([`${base}/json`, true, "Created"]);
    expect(globalFetch).not.toHaveBeenCalled();
  });

  it("follows a redirect from the answer it has: the first URL never sees the request twice", async () => {
    seen.length = 0;
    // A POST answered 303 (a payment API's "see the charge"): one POST, then a GET without the body.
    const res = await nodeFetch(`${base}/see-other`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"amount":1}',
    });
    expect(res.status).toBe(201);
    expect(seen.map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual([
      'POST /see-other {"amount":1}',
      "GET /json ",
    ]);
    expect(seen[1]?.headers["content-type"]).toBeUndefined();
    seen.length = 0;
    await expect(
      nodeFetch(`${base}/see-other`, { method: "POST", body: "x", redirect: "error" }),
    ).rejects.toThrow(TypeError);
    expect(seen.map((s) => s.url)).toEqual(["/see-other"]);
  });

  it("decodes a compressed body as fetch does", async () => {
    const res = await nodeFetch(`${base}/gzip`, { headers: { "accept-encoding": "gzip" } });
    expect(await res.json()).toEqual({ zipped: true });
  });

  it("rejects with the signal's reason on timeout, and with TypeError('fetch failed') when unreachable", async () => {
    const timedOut = nodeFetch(`${base}/slow`, { signal: AbortSignal.timeout(50) });
    await expect(timedOut).rejects.toMatchObject({ name: "TimeoutError" });
    const refused = nodeFetch("http://127.0.0.1:1/", { method: "POST", body: "x" });
    await expect(refused).rejects.toMatchObject({ name: "TypeError", message: "fetch failed" });
    await expect(refused.catch((e: Error) => (e.cause as { code?: string }).code)).resolves.toBe(
      "ECONNREFUSED",
    );
  });

  it("hands a Request object or a stream body to the global fetch", async () => {
    const viaRequest = await nodeFetch(new Request(`${base}/json`, { method: "POST", body: "req" }));
    expect(((await viaRequest.json()) as { echo: string }).echo).toBe("req");
    const stream = new Blob(["blob"]);
    const viaBlob = await nodeFetch(`${base}/json`, { method: "POST", body: stream });
    expect(((await viaBlob.json()) as { echo: string }).echo).toBe("blob");
    expect(globalFetch).toHaveBeenCalledTimes(2);
  });

  it("answers through a Node server adapter that replaced the global Response, a handler returning it included", async () => {
    // @hono/node-server puts a class of its own in the global; a response it did not build must still be
    // sent with the upstream's status, headers and body when a handler proxies it.
    const original = globalThis.Response;
    const app = new Hono().get("/proxy", () => nodeFetch(`${base}/json`, { method: "POST", body: "via" }));
    const proxy = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
    try {
      await new Promise((resolve) => proxy.once("listening", resolve));
      expect(globalThis.Response).not.toBe(original);
      const direct = await nodeFetch(`${base}/json`, { method: "POST", body: "x" });
      expect(direct).toBeInstanceOf(Response);
      expect([direct.status, direct.headers.get("content-type"), await direct.json()]).toEqual([
        201,
        "application/json",
        { ok: true, echo: "x" },
      ]);
      const port = (proxy.address() as AddressInfo).port;
      const proxied = await fetch(`http://127.0.0.1:${port}/proxy`);
      expect([proxied.status, proxied.headers.get("content-type"), await proxied.json()]).toEqual([
        201,
        "application/json",
        { ok: true, echo: "via" },
      ]);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
      Object.defineProperty(globalThis, "Response", { value: original });
    }
  });
});
