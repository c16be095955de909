import { describe, expect, it } from "vitest";
import { defineFunction } from "./define-function.ts";
import { capturingLogger } from "./fixtures.test-helpers.ts";
import { serveNode } from "./node.ts";

describe("serveNode", () => {
  it("serves the app over HTTP and lets an in-flight request finish on close", async () => {
    const { log, lines } = capturingLogger();
    const fn = defineFunction({ name: "node-test", logger: log });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    fn.app.get("/slow", async (c) => {
      await gate;
      return c.text("done");
    });
    const served = serveNode(fn.app, { port: 0, hostname: "127.0.0.1", logger: log });
    const { port } = await served.ready;
    const inFlight = fetch(`http://127.0.0.1:${port}/slow`);
    // Wait until the server has the request before closing.
    while (served.server.listening && (await connections(served.server)) === 0)
      await new Promise((r) => setTimeout(r, 5));
    const closed = served.close();
    release();
    expect(await (await inFlight).text()).toBe("done");
    await closed;
    expect(served.server.listening).toBe(false);
    expect(lines.some((l) => l.msg === "function listening" && l.port === port)).toBe(true);
    await expect(fetch(`http://127.0.0.1:${port}/slow`)).rejects.toThrow();
  });
});

function connections(server: { getConnections(cb: (err: Error | null, n: number) => void): void }) {
  return new Promise<number>((resolve, reject) =>
    server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}
