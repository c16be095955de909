import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { headerReader } from "./request-headers.ts";

/** An app that answers with what headerReader read, and whether it took Node's parsed headers. */
function echoApp() {
  const app = new Hono();
  app.post("/", (c) => {
    const header = headerReader(c);
    const node = (c.env as { incoming?: unknown } | undefined)?.incoming !== undefined;
    return c.json({ node, id: header("ce-id"), multi: header("x-multi"), missing: header("x-none") });
  });
  return app;
}

describe("headerReader", () => {
  it("reads Node's parsed headers when served by @hono/node-server, joining repeats like Headers.get", async () => {
    const server = serve({ fetch: echoApp().fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise((resolve) => server.once("listening", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const headers = new Headers([
        ["ce-id", "ORDERS:7"],
        ["x-multi", "a"],
        ["x-multi", "b"],
      ]);
      const res = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", headers, body: "{}" });
      expect(await res.json()).toEqual({ node: true, id: "ORDERS:7", multi: "a, b", missing: null });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("falls back to the Request's headers anywhere else (app.request, Workers)", async () => {
    const res = await echoApp().request("/", {
      method: "POST",
      headers: [
        ["ce-id", "x"],
        ["x-multi", "a"],
        ["x-multi", "b"],
      ],
      body: "{}",
    });
    expect(await res.json()).toEqual({ node: false, id: "x", multi: "a, b", missing: null });
  });
});
