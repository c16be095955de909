import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devBridgeConfig, repoint } from "./bridge-config.ts";
import { formatLine, parseLine } from "./log-format.ts";
import { LogRouter } from "./log-router.ts";
import { DEFAULT_PORTS, devPorts } from "./ports.ts";

const record = {
  level: 40,
  time: "2026-01-01T12:34:56.000Z",
  pid: 1,
  hostname: "h",
  fn: "payment",
  msg: "request refused",
  status: 503,
  reason: "payment gateway rate limit",
  err: { type: "RetryableError", message: "boom", stack: "at x" },
};

describe("log lines", () => {
  it("tags a JSON line by its fn and prints it on one readable line", () => {
    const line = parseLine(JSON.stringify(record), "functions");
    expect(line.tag).toBe("payment");
    expect(formatLine(line, { colour: false })).toBe(
      '12:34:56 [payment] WARN  request refused status=503 reason="payment gateway rate limit" err="RetryableError: boom"',
    );
  });

  it("keeps the process tag when forced (every bridge line is [bridge]) and passes text lines through", () => {
    expect(parseLine(JSON.stringify(record), "bridge", true).tag).toBe("bridge");
    const text = parseLine("Warning: something odd", "functions");
    expect(text.record).toBeUndefined();
    expect(formatLine(text, { colour: false })).toMatch(
      /^\d\d:\d\d:\d\d \[functions\] Warning: something odd$/,
    );
  });

  it("colours the tag and the level only when asked", () => {
    const line = parseLine(JSON.stringify(record), "x");
    expect(formatLine(line, { colour: true, tagColour: () => 36 })).toContain("\u001b[36m[payment]");
    expect(formatLine(line, { colour: false, tagColour: () => 36 })).not.toContain("\u001b[");
  });
});

describe("LogRouter", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "jetway-logs-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function collect(): { out: Writable; text: () => string } {
    let text = "";
    const out = new Writable({
      write(chunk, _enc, done) {
        text += String(chunk);
        done();
      },
    });
    return { out, text: () => text };
  }

  it("shows one function with --only, raw JSON with --json, and files every line under its tag", async () => {
    const only = collect();
    const json = collect();
    const a = new LogRouter({ dir: join(dir, "a"), only: "payment", out: only.out });
    const b = new LogRouter({ dir: join(dir, "b"), json: true, out: json.out });
    const lines = [JSON.stringify(record), JSON.stringify({ ...record, fn: "order", msg: "order updated" })];
    for (const router of [a, b]) {
      const input = new PassThrough();
      router.attach(input, "functions");
      input.end(`${lines.join("\n")}\n`);
      await new Promise((r) => input.once("end", r));
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all([a.close(), b.close()]);
    expect(only.text()).toContain("[payment]");
    expect(only.text()).not.toContain("order updated");
    expect(json.text()).toBe(`${lines.join("\n")}\n`);
    expect(await readFile(join(dir, "a", "order.log"), "utf8")).toBe(`${lines[1]}\n`);
    expect(await readFile(join(dir, "a", "payment.log"), "utf8")).toBe(`${lines[0]}\n`);
  });
});

describe("dev ports and bridge config", () => {
  it("lays a port base out as one block and keeps the fixed dev ports without one", () => {
    expect(devPorts()).toEqual(DEFAULT_PORTS);
    expect(devPorts(20000)).toEqual({
      bridge: 20000,
      nats: 20006,
      functions: { "gateway-sim": 20001, order: 20002, payment: 20003, inventory: 20004, audit: 20005 },
    });
    expect(() => devPorts(65530)).toThrow(RangeError);
  });

  it("re-points dev route URLs and the bridge port, leaving other URLs and ${VAR} references alone", () => {
    const ports = devPorts(30000);
    expect(repoint("http://127.0.0.1:8792/events", ports)).toBe("http://127.0.0.1:30003/events");
    expect(repoint("http://example.com:9999/x", ports)).toBe("http://example.com:9999/x");
    const out = devBridgeConfig(
      {
        http: { port: 8080, host: "127.0.0.1" },
        routes: [
          { name: "audit-orders", url: "http://127.0.0.1:8794/events", secret: "${JETWAY_SECRET:-dev}" },
        ],
      },
      ports,
      { routes: { "audit-orders": { max_deliver: 3 } } },
    );
    expect(out).toEqual({
      http: { port: 30000, host: "127.0.0.1" },
      routes: [
        {
          name: "audit-orders",
          url: "http://127.0.0.1:30005/events",
          secret: "${JETWAY_SECRET:-dev}",
          max_deliver: 3,
        },
      ],
    });
  });
});
