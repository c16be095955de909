import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, maxAckPending, parseConfig } from "./config.ts";

const minimal = {
  streams: [{ name: "ORDERS", subjects: ["orders.>"] }],
  routes: [{ name: "payment", stream: "ORDERS", url: "http://127.0.0.1:8788/" }],
};

/** The one route of `minimal` with `extra` on it, as the config reads it. */
function routeWith(extra: Record<string, unknown>) {
  const route = parseConfig({ ...minimal, routes: [{ ...minimal.routes[0], ...extra }] }, "t", {}).routes[0];
  if (!route) throw new Error("no route");
  return route;
}

function issuesOf(raw: unknown, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parseConfig(raw, "test", env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  it("takes http.tls as a certificate and its key, both", () => {
    expect(issuesOf({ ...minimal, http: { tls: { cert_file: "bridge.pem" } } })).toEqual([
      "http.tls.key_file: Invalid input: expected string, received undefined",
    ]);
    const config = parseConfig(
      { ...minimal, http: { tls: { cert_file: "b.pem", key_file: "b-key.pem" } } },
      "t",
      {},
    );
    expect(config.http.tls).toEqual({ cert_file: "b.pem", key_file: "b-key.pem" });
  });

  it("takes an http or https url, and tls towards the function only with https", () => {
    const route = (extra: Record<string, unknown>) => ({
      ...minimal,
      routes: [{ ...minimal.routes[0], ...extra }],
    });
    expect(issuesOf(route({ url: "ftp://127.0.0.1/x" }))).toEqual([
      "routes[0].url: must be an http:// or https:// URL",
    ]);
    expect(issuesOf(route({ tls: { ca_file: "ca.pem" } }))).toEqual([
      "routes[0].tls: tls applies to an https:// url only",
    ]);
    expect(issuesOf(route({ url: "https://fn.internal/events", tls: { cert_file: "client.pem" } }))).toEqual([
      "routes[0].tls: cert_file and key_file go together (a client certificate and its key)",
    ]);
    expect(
      routeWith({ url: "https://fn.internal/events", tls: { ca_file: "ca.pem", server_name: "fn" } }).tls,
    ).toEqual({
      ca_file: "ca.pem",
      server_name: "fn",
    });
  });

  it("applies defaults and parses durations to milliseconds", () => {
    const config = parseConfig(
      { ...minimal, routes: [{ ...minimal.routes[0], timeout: "2s", backoff: ["250ms", "1m"] }] },
      "t",
      {},
    );
    const route = config.routes[0];
    expect(route?.timeout).toBe(2_000);
    expect(route?.backoff).toEqual([250, 60_000]);
    expect(route?.ack_wait).toBe(30_000);
    expect(config.streams[0]?.duplicate_window).toBe(120_000);
    expect(config.dead_letter).toMatchObject({ stream: "DLQ", subject_prefix: "dlq" });
    expect(config.nats).toMatchObject({ ping_interval: 10_000, max_pings_out: 2 });
  });

  it("logs acks at debug unless log.acks says info, and names log.acks when it is neither", () => {
    expect(parseConfig(minimal, "t", {}).log).toEqual({ level: "info", acks: "debug" });
    expect(parseConfig({ ...minimal, log: { acks: "info" } }, "t", {}).log.acks).toBe("info");
    const issues = issuesOf({ ...minimal, log: { acks: "warn" } });
    expect(issues.some((i) => i.startsWith("log.acks:"))).toBe(true);
  });

  it("has a circuit breaker on every route unless switched off, and names its bad fields", () => {
    expect(routeWith({}).circuit_breaker).toEqual({ failures: 20, open_for: 5_000, max_open: 120_000 });
    expect(routeWith({ circuit_breaker: false }).circuit_breaker).toBe(false);
    expect(routeWith({ circuit_breaker: { open_for: "1s" } }).circuit_breaker).toEqual({
      failures: 20,
      open_for: 1_000,
      max_open: 120_000,
    });
    const issues = (breaker: unknown) =>
      issuesOf({ ...minimal, routes: [{ ...minimal.routes[0], circuit_breaker: breaker }] }).join("\n");
    expect(issues({ failures: 0 })).toContain("routes[0].circuit_breaker.failures");
    expect(issues({ open_for: "10m" })).toContain("routes[0].circuit_breaker.max_open");
    expect(issues({ max_opn: "1m" })).toContain("max_opn");
    expect(issues(true)).toContain("routes[0].circuit_breaker");
    // A value of the wrong type inside the object, which matches neither false nor the object.
    expect(issues({ open_for: "5 secs" })).toMatch(/^routes\[0\]\.circuit_breaker\.open_for: /);
    expect(issues({ failures: "20" })).toMatch(/^routes\[0\]\.circuit_breaker\.failures: .*expected number/);
    expect(issues("off")).toBe(
      "routes[0].circuit_breaker: expected false or expected object, received string",
    );
  });

  it("refuses two streams of one name, and two routes on one durable of a stream", () => {
    const route = minimal.routes[0];
    expect(
      issuesOf({ ...minimal, streams: [...minimal.streams, { name: "ORDERS", subjects: ["more.>"] }] }),
    ).toEqual(['streams[1].name: duplicate stream name "ORDERS"']);
    expect(
      issuesOf({ ...minimal, routes: [route, { ...route, name: "audit", durable: "payment" }] }),
    ).toEqual(['routes[1].durable: route "payment" already uses the durable "payment" on stream "ORDERS"']);
    expect(
      issuesOf({
        ...minimal,
        routes: [
          { ...route, durable: "audit" },
          { ...route, name: "audit" },
        ],
      }),
    ).toEqual(['routes[1].name: route "payment" already uses the durable "audit" on stream "ORDERS"']);
    const streams = [...minimal.streams, { name: "AUDIT", subjects: ["audit.>"] }];
    const elsewhere = { ...route, name: "audit", stream: "AUDIT", durable: "payment" };
    expect(parseConfig({ ...minimal, streams, routes: [route, elsewhere] }, "t", {}).routes).toHaveLength(2);
  });

  it("sizes max_ack_pending to what a route can have out, batches capped at 16", () => {
    const route = (extra: Record<string, unknown>) => maxAckPending(routeWith(extra));
    expect(route({ concurrency: 8 })).toBe(16);
    expect(route({ concurrency: 1, batch: { size: 50 } })).toBe(200);
    expect(route({ concurrency: 4, batch: { size: 50 } })).toBe(500);
    expect(route({ concurrency: 64, batch: { size: 100 } })).toBe(1_600);
    expect(route({ concurrency: 64, batch: { size: 100 }, max_ack_pending: 300 })).toBe(300);
  });

  it("names the field and the reason for each invalid value", () => {
    const issues = issuesOf({
      ...minimal,
      routes: [
        { name: "pay ment", stream: "NOPE", url: "not a url", timeout: "ten seconds", concurrency: 0 },
      ],
    });
    expect(issues.some((i) => i.startsWith("routes[0].name:"))).toBe(true);
    expect(issues.some((i) => i.startsWith("routes[0].url:"))).toBe(true);
    expect(issues.some((i) => i.startsWith("routes[0].timeout:") && i.includes("invalid duration"))).toBe(
      true,
    );
    expect(issues.some((i) => i.startsWith("routes[0].concurrency:"))).toBe(true);
  });

  it("takes http.publish_secret as one key or a list of them, and names it when empty", () => {
    expect(parseConfig({ ...minimal, http: { publish_secret: "k" } }, "t", {}).http.publish_secret).toBe("k");
    expect(
      parseConfig({ ...minimal, http: { publish_secret: ["new", "old"] } }, "t", {}).http.publish_secret,
    ).toEqual(["new", "old"]);
    for (const bad of ["", [], ["new", ""]]) {
      const issues = issuesOf({ ...minimal, http: { publish_secret: bad } });
      expect(
        issues.some((i) => i.startsWith("http.publish_secret")),
        `${JSON.stringify(bad)}: ${issues}`,
      ).toBe(true);
    }
  });

  it("names control.poll_interval when it is below 100ms (0 would read the bucket without pause)", () => {
    for (const bad of [0, "50ms", "soon"]) {
      const issues = issuesOf({ ...minimal, control: { poll_interval: bad } });
      expect(
        issues.some((i) => i.startsWith("control.poll_interval")),
        `${bad}: ${issues}`,
      ).toBe(true);
    }
    expect(parseConfig({ ...minimal, control: { poll_interval: "1s" } }, "t", {}).control.poll_interval).toBe(
      1_000,
    );
  });

  it("reads a route's rate_limit as messages per duration, and names it when it is not one", () => {
    const route = (rate: unknown) => routeWith({ rate_limit: rate });
    expect(route("200/s").rate_limit).toEqual({ messages: 200, perMs: 1_000 });
    expect(route("1000 / m").rate_limit).toEqual({ messages: 1_000, perMs: 60_000 });
    expect(route("5/10s").rate_limit).toEqual({ messages: 5, perMs: 10_000 });
    expect(route(50).rate_limit).toEqual({ messages: 50, perMs: 1_000 });
    expect(parseConfig(minimal, "t", {}).routes[0]?.rate_limit).toBeUndefined();
    for (const bad of ["fast", "0/s", "10/0s", "10/fortnight", "10", -1, 0]) {
      const issues = issuesOf({ ...minimal, routes: [{ ...minimal.routes[0], rate_limit: bad }] });
      expect(issues, String(bad)).toEqual([expect.stringMatching(/^routes\[0\]\.rate_limit: invalid rate/)]);
    }
  });

  it("rejects a route whose stream is not declared, and unknown keys", () => {
    expect(issuesOf({ ...minimal, routes: [{ ...minimal.routes[0], stream: "OTHER" }] })).toContain(
      'routes[0].stream: stream "OTHER" is not declared under streams',
    );
    expect(issuesOf({ ...minimal, rotues: [] }).join()).toMatch(/rotues/);
  });

  it("expands ${VAR} from the environment and names a missing one", () => {
    const raw = { ...minimal, routes: [{ ...minimal.routes[0], secret: "${PAYMENT_SECRET}" }] };
    expect(parseConfig(raw, "t", { PAYMENT_SECRET: "s3cret" }).routes[0]?.secret).toBe("s3cret");
    expect(issuesOf(raw)).toEqual(["routes[0].secret: environment variable PAYMENT_SECRET is not set"]);
    const withDefault = { ...minimal, routes: [{ ...minimal.routes[0], secret: "${PAYMENT_SECRET:-dev}" }] };
    expect(parseConfig(withDefault, "t", {}).routes[0]?.secret).toBe("dev");
    expect(parseConfig(withDefault, "t", { PAYMENT_SECRET: "" }).routes[0]?.secret).toBe("dev");
  });

  it("lets NATS_URL override the servers", () => {
    expect(parseConfig(minimal, "t", { NATS_URL: "nats://a:1,nats://b:2" }).nats.servers).toEqual([
      "nats://a:1",
      "nats://b:2",
    ]);
  });

  it("loads YAML from a file and reports a missing file by name", async () => {
    const dir = await mkdtemp(join(tmpdir(), "jetway-config-"));
    const file = join(dir, "bridge.yaml");
    await writeFile(file, "streams:\n  - { name: ORDERS, subjects: [orders.>] }\nroutes: []\n");
    expect((await loadConfig(file, {})).streams[0]?.name).toBe("ORDERS");
    await expect(loadConfig(join(dir, "missing.yaml"), {})).rejects.toThrow(
      /missing\.yaml[\s\S]*cannot read file/,
    );
  });

  it("says where YAML does not parse, without quoting the line: it may hold a secret", async () => {
    const dir = await mkdtemp(join(tmpdir(), "jetway-config-"));
    const file = join(dir, "bridge.yaml");
    await writeFile(file, "http:\n  publish_token: s3cr3t: tok#en\n");
    const error = (await loadConfig(file, {}).catch((e: unknown) => e)) as ConfigError;
    expect(error.issues).toEqual([
      expect.stringMatching(/^not valid YAML\/JSON: \w+ at line 2, column \d+$/),
    ]);
    expect(error.message).not.toContain("s3cr3t");
  });
});
