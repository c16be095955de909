import { existsSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { type Config, ConfigError, loadConfig } from "../bridge/config.ts";
import { BRIDGE_NODE_FLAGS } from "../bridge/node-flags.ts";
import { HOUSEKEEPING_TASKS } from "../functions/order/housekeeping.ts";
import { configOptionPaths, ROOT, readText, readYaml, requiredEnv } from "./testing/manifests.ts";

/** Every bridge config in infra/ must load with the bridge's own schema, so none of them can rot. */
const load = (file: string, env: NodeJS.ProcessEnv = {}): Promise<Config> =>
  loadConfig(join(ROOT, file), env);
const envFor = (file: string) => Object.fromEntries(requiredEnv(readText(file)).map((k) => [k, `test-${k}`]));

/** The routes of the reference domain: name → [stream, filter_subject, function port]. */
const DOMAIN_ROUTES: Record<string, [string, string | undefined, number]> = {
  payment: ["ORDERS", "orders.created.v1", 8792],
  inventory: ["ORDERS", "orders.created.v1", 8793],
  "inventory-release": ["PAYMENTS", "payments.failed.v1", 8793],
  "payment-refunds": ["INVENTORY", "inventory.rejected.v1", 8792],
  "order-status-payments": ["PAYMENTS", undefined, 8791],
  "order-status-inventory": ["INVENTORY", undefined, 8791],
  "audit-orders": ["ORDERS", undefined, 8794],
  "audit-payments": ["PAYMENTS", undefined, 8794],
  "audit-inventory": ["INVENTORY", undefined, 8794],
};

function expectDomainRoutes(config: Config, host: (port: number) => string): void {
  expect(config.streams.map((s) => [s.name, s.subjects, s.duplicate_window])).toEqual([
    ["ORDERS", ["orders.>"], 120_000],
    ["PAYMENTS", ["payments.>"], 120_000],
    ["INVENTORY", ["inventory.>"], 120_000],
  ]);
  expect(config.dead_letter.stream).toBe("DLQ");
  const routes = config.routes.map((r) => [r.name, [r.stream, r.filter_subject, r.url]]);
  expect(Object.fromEntries(routes)).toEqual(
    Object.fromEntries(
      Object.entries(DOMAIN_ROUTES).map(([name, [stream, filter, port]]) => [
        name,
        [stream, filter, `http://${host(port)}:${port}/events`],
      ]),
    ),
  );
  for (const route of config.routes) {
    // A call still running when ack_wait expires would be redelivered next to itself.
    expect(route.ack_wait, `${route.name}: ack_wait > timeout`).toBeGreaterThan(route.timeout);
  }
}

describe("bridge configs in infra/", () => {
  it("bridge.dev.yaml: the dev loop's streams and routes, secret from JETWAY_SECRET or dev-secret", async () => {
    const config = await load("infra/bridge.dev.yaml");
    expectDomainRoutes(config, () => "127.0.0.1");
    expect(config.http.port).toBe(8080);
    expect(config.nats.servers).toEqual(["nats://127.0.0.1:4222"]);
    expect(new Set(config.routes.map((r) => r.secret))).toEqual(new Set(["dev-secret"]));
    const withEnv = await load("infra/bridge.dev.yaml", { JETWAY_SECRET: "s3cret" });
    expect(new Set(withEnv.routes.map((r) => r.secret))).toEqual(new Set(["s3cret"]));
  });

  it("bridge.compose.yaml: the same routes on compose service names, R3 streams and dead letters", async () => {
    const file = "infra/bridge.compose.yaml";
    const names: Record<number, string> = {
      8791: "order",
      8792: "payment",
      8793: "inventory",
      8794: "audit",
    };
    const config = await load(file, envFor(file));
    expectDomainRoutes(config, (port) => names[port] ?? "?");
    expect(config.streams.every((s) => s.replicas === 3)).toBe(true);
    expect(config.dead_letter.replicas).toBe(3);
    expect(config.nats.user).toBe("bridge");
    expect(config.nats.pass).toBe("test-NATS_BRIDGE_PASSWORD");
  });

  it("bridge.example.yaml loads, and fails naming each missing ${VAR}", async () => {
    const file = "infra/bridge.example.yaml";
    const config = await load(file, envFor(file));
    expect(config.routes.map((r) => r.name)).toEqual(Object.keys(DOMAIN_ROUTES));
    expect(config.nats.tls?.ca_file).toBe("/etc/jetway/tls/ca.crt");
    expect(config.routes.find((r) => r.name === "audit-orders")?.batch).toEqual({ size: 100, max_wait: 50 });
    expect(config.routes[0]?.status_outcomes).toEqual({ "409": "ack", "404": "retry" });
    const error = await load(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toContain(
      "nats.pass: environment variable NATS_BRIDGE_PASSWORD is not set",
    );
  });

  it("bridge.example.yaml documents every option of the config schema (set or commented out)", () => {
    const text = readText("infra/bridge.example.yaml");
    const paths = configOptionPaths();
    expect(paths).toContain("routes[].batch.max_wait");
    const missing = paths.filter((path) => {
      const key = path.split(".").at(-1)?.replace("[]", "") ?? path;
      return !new RegExp(`(^|[\\s{,#-])${key}:`, "m").test(text);
    });
    expect(missing).toEqual([]);
  });
});

describe("container images", () => {
  const ignored = readText(".dockerignore")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#") && !l.startsWith("!"));

  /** Sources each `COPY <src> <dest>` takes from the build context (multi-stage copies excluded). */
  function copiedSources(dockerfile: string): string[] {
    return [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].flatMap((m) =>
      (m[1] ?? "").split(/\s+/).slice(0, -1),
    );
  }

  it.each(["infra/Dockerfile", "infra/Dockerfile.function"])(
    "%s: node:22-slim, production deps, non-root, SIGTERM, healthcheck, sources present",
    (file) => {
      const text = readText(file);
      expect(text.match(/^FROM .+$/gm)?.every((line) => line.startsWith("FROM node:22-slim"))).toBe(true);
      expect(text).toMatch(/npm ci --omit=dev/);
      expect(text).toMatch(/^USER node$/m);
      expect(text).toMatch(/^STOPSIGNAL SIGTERM$/m);
      expect(text).toMatch(/^HEALTHCHECK .+\\\n\s+CMD \["node", "-e", /m);
      expect(text).toMatch(/healthz/);
      for (const src of copiedSources(text)) {
        expect(existsSync(join(ROOT, src)), `${file}: COPY ${src} exists`).toBe(true);
        expect(ignored, `${file}: .dockerignore keeps ${src}`).not.toContain(src);
      }
    },
  );

  it("the bridge image runs node with the bridge's flags (bridge/node-flags.ts)", () => {
    expect(readText("infra/Dockerfile")).toContain(`ENV NODE_OPTIONS="${BRIDGE_NODE_FLAGS.join(" ")}"`);
  });

  it("the bridge image runs the CLI on the config path the manifests mount", () => {
    expect(readText("infra/Dockerfile")).toContain(
      'CMD ["node", "bin/jetway.ts", "bridge", "--config", "/etc/jetway/bridge.yaml"]',
    );
    expect(existsSync(join(ROOT, "bin/jetway.ts"))).toBe(true);
    expect(readYaml("infra/compose.yaml", true)).toMatchObject({
      services: { bridge: { volumes: ["./bridge.compose.yaml:/etc/jetway/bridge.yaml:ro"] } },
    });
  });

  it("the function image defaults to payment and builds an entry that exists", () => {
    const text = readText("infra/Dockerfile.function");
    expect(text).toMatch(/^ARG FUNCTION=payment$/m);
    expect(text).toContain('import "./functions/%s/node.ts"');
    expect(existsSync(join(ROOT, "functions/payment/node.ts"))).toBe(true);
  });
});

describe("sst.config.ts", () => {
  const text = readText("sst.config.ts");

  it("parses as TypeScript (it is excluded from tsc: its globals come from SST)", () => {
    const out = ts.transpileModule(text, { reportDiagnostics: true, fileName: "sst.config.ts" });
    expect(out.diagnostics?.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"))).toEqual([]);
    expect(text.startsWith('/// <reference path="./.sst/platform/config.d.ts" />')).toBe(true);
  });

  it("deploys every function from a lambda.ts that exports a handler", () => {
    const names = /const FUNCTIONS = \[(.+)\] as const/.exec(text)?.[1]?.match(/"([a-z-]+)"/g) ?? [];
    expect(names.map((n) => n.slice(1, -1))).toEqual(["order", "payment", "inventory", "audit"]);
    expect(text).toContain("handler: `functions/${name}/lambda.handler`");
    for (const name of ["order", "payment", "inventory", "audit"]) {
      expect(readText(`functions/${name}/lambda.ts`)).toMatch(/export (const|(async )?function) handler\b/);
    }
  });

  it("schedules the order function's housekeeping tasks, each one the Lambda entry knows", () => {
    const scheduled = [...text.matchAll(/jetway_housekeeping: "([a-z-]+)"/g)].map((m) => m[1]);
    expect(scheduled.sort()).toEqual([...HOUSEKEEPING_TASKS].sort());
    expect(text.match(/function: fns\.order\.arn/g)).toHaveLength(2);
  });

  it("runs the bridge image as a service in a cluster on a VPC, with the secrets it needs", () => {
    for (const part of [
      "new sst.aws.Vpc(",
      "new sst.aws.Cluster(",
      "new sst.aws.Service(",
      "new sst.aws.Bucket(",
    ]) {
      expect(text).toContain(part);
    }
    expect(text).toContain('dockerfile: "infra/Dockerfile"');
    expect(text).toContain('new sst.Secret("JetwaySecret")');
    expect(text).toContain('new sst.Secret("DatabaseUrl")');
    // The order function's URL is public: its housekeeping endpoints need the admin token.
    expect(text).toContain('new sst.Secret("AdminToken")');
    expect(text).toContain("JETWAY_ADMIN_TOKEN: adminToken.value");
    // A NATS outage makes /readyz 503: the load balancer must not replace tasks for it.
    expect(text).toMatch(/health: \{ "8080\/http": \{ path: "\/healthz"/);
  });

  it("lists the domain's routes in the same order as the YAML configs", () => {
    const names = [...text.matchAll(/route\("([a-z-]+)", "([A-Z]+)"/g)].map((m) => [m[1], m[2]]);
    expect(names).toEqual(Object.entries(DOMAIN_ROUTES).map(([name, [stream]]) => [name, stream]));
  });
});
