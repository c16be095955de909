import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { durableName, parseConfig } from "../../bridge/config.ts";
import { BridgeEvents } from "../../bridge/events.ts";
import { BridgeMetrics } from "../../bridge/metrics.ts";
import { MIN_RETENTION_S } from "../../functions/order/admin.ts";
import {
  asList,
  asNode,
  at,
  type Node,
  readText,
  readYaml,
  readYamlDocs,
  requiredEnv,
} from "../testing/manifests.ts";

const DIR = "infra/k8s";
/** Every Kubernetes object in infra/k8s (Helm values excluded), by kind. */
const objects: Node[] = readdirSync(new URL(".", import.meta.url))
  .filter((f) => f.endsWith(".yaml") && f !== "nats-values.yaml")
  .flatMap((f) => readYamlDocs(`${DIR}/${f}`));
const one = (kind: string): Node => {
  const found = objects.filter((o) => o.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0] as Node;
};
const deployment = () => one("Deployment");
const container = () =>
  asNode(asList(at(deployment(), "spec.template.spec.containers"), "containers")[0], "bridge");
const podLabels = () => asNode(at(deployment(), "spec.template.metadata.labels"), "pod labels");
const configMapText = () => String(asNode(at(one("ConfigMap"), "data"), "data")["bridge.yaml"] ?? "");
const bridgeSecret = () => {
  const secret = objects.find((o) => o.kind === "Secret" && at(o, "metadata.name") === "jetway-bridge");
  return asNode(at(secret, "stringData"), "jetway-bridge stringData");
};
const bridgeConfig = () => {
  const env = Object.fromEntries(requiredEnv(configMapText()).map((k) => [k, "x"]));
  return parseConfig(parse(configMapText()), "bridge-configmap.yaml", env);
};
const selects = (selector: unknown) =>
  Object.entries(asNode(selector, "selector")).every(([k, v]) => podLabels()[k] === v);

describe("infra/k8s manifests", () => {
  it("parse, and every object is namespaced in jetway", () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(
      [
        "ConfigMap",
        "CronJob",
        "CronJob",
        "Deployment",
        "Namespace",
        "PodDisruptionBudget",
        "PrometheusRule",
        "ScaledObject",
        "Secret",
        "Secret",
        "Secret",
        "Service",
      ].sort(),
    );
    for (const o of objects.filter((x) => x.kind !== "Namespace"))
      expect(at(o, "metadata.namespace")).toBe("jetway");
  });

  it("the ConfigMap's embedded bridge config loads, and the Secret provides every ${VAR} it needs", () => {
    const config = bridgeConfig();
    expect(config.streams.every((s) => s.replicas === 3)).toBe(true);
    expect(config.nats.servers).toEqual(["nats://nats.jetway.svc.cluster.local:4222"]);
    for (const key of requiredEnv(configMapText())) expect(bridgeSecret(), key).toHaveProperty(key);
    expect(at(container(), "envFrom")).toEqual([{ secretRef: { name: "jetway-bridge" } }]);
  });

  it("the Deployment: 2 replicas, probes on the config's port, config mounted where the CLI reads it", () => {
    const spec = asNode(at(deployment(), "spec"), "spec");
    const config = bridgeConfig();
    expect(spec.replicas).toBe(2);
    expect(selects(at(spec, "selector.matchLabels"))).toBe(true);
    const c = container();
    const port = asList(c.ports, "ports").map((p) => asNode(p, "port"));
    expect(port).toEqual([{ name: "http", containerPort: config.http.port }]);
    expect(at(c, "readinessProbe.httpGet")).toEqual({ path: "/readyz", port: "http" });
    expect(at(c, "livenessProbe.httpGet")).toEqual({ path: "/healthz", port: "http" });
    expect(c.args).toEqual(["node", "bin/jetway.ts", "bridge", "--config", "/etc/jetway/bridge.yaml"]);
    expect(at(c, "volumeMounts")).toContainEqual({
      name: "config",
      mountPath: "/etc/jetway",
      readOnly: true,
    });
    expect(at(spec, "template.spec.volumes")).toContainEqual({
      name: "config",
      configMap: { name: "jetway-bridge" },
    });
  });

  it("the pod outlives preStop + shutdown.grace_period before Kubernetes kills it", () => {
    const grace = Number(at(deployment(), "spec.template.spec.terminationGracePeriodSeconds"));
    const preStop = asList(at(container(), "lifecycle.preStop.exec.command"), "preStop");
    expect(preStop[0]).toBe("sleep");
    const budget = Number(preStop[1]) + bridgeConfig().shutdown.grace_period / 1000;
    expect(grace).toBeGreaterThan(budget);
  });

  it("Service and PodDisruptionBudget select the bridge pods; the PDB leaves one replica up", () => {
    const service = one("Service");
    expect(selects(at(service, "spec.selector"))).toBe(true);
    expect(at(service, "spec.ports")).toEqual([{ name: "http", port: 8080, targetPort: "http" }]);
    const pdb = one("PodDisruptionBudget");
    expect(selects(at(pdb, "spec.selector.matchLabels"))).toBe(true);
    expect(Number(at(pdb, "spec.minAvailable"))).toBeGreaterThanOrEqual(1);
    expect(Number(at(pdb, "spec.minAvailable"))).toBeLessThan(Number(at(deployment(), "spec.replicas")));
  });

  it("the alert rules use only metrics the bridge exports, and every rule says what it is about", async () => {
    const exported = new Set(
      [
        ...(await new BridgeMetrics(new BridgeEvents(), { defaultMetrics: false }).metrics()).matchAll(
          /^# TYPE (\S+) /gm,
        ),
      ].map((m) => m[1]),
    );
    const rules = asList(at(one("PrometheusRule"), "spec.groups"), "groups").flatMap((g) =>
      asList(at(g, "rules"), "rules").map((r) => asNode(r, "rule")),
    );
    expect(rules.length).toBeGreaterThanOrEqual(5);
    for (const rule of rules) {
      const used = [...String(rule.expr).matchAll(/\bjetway_[a-z_]+/g)].map((m) => m[0]);
      expect(used.length, String(rule.alert)).toBeGreaterThan(0);
      for (const name of used) expect(exported, `${rule.alert} uses ${name}`).toContain(name);
      expect(at(rule, "annotations.summary"), String(rule.alert)).toBeTruthy();
    }
    expect(rules.map((r) => r.alert)).toContain("JetwayRoutePaused");
  });

  it("the ScaledObject scales the Deployment with one nats-jetstream trigger per route's consumer", () => {
    const scaled = one("ScaledObject");
    expect(at(scaled, "spec.scaleTargetRef.name")).toBe(at(deployment(), "metadata.name"));
    expect(Number(at(scaled, "spec.minReplicaCount"))).toBeGreaterThanOrEqual(2);
    const triggers = asList(at(scaled, "spec.triggers"), "triggers").map((t) => asNode(t, "trigger"));
    const expected = bridgeConfig().routes.map((r) => ({ stream: r.stream, consumer: durableName(r) }));
    expect(
      triggers.map((t) => ({ stream: at(t, "metadata.stream"), consumer: at(t, "metadata.consumer") })),
    ).toEqual(expected);
    const accounts = asNode(at(readYaml(`${DIR}/nats-values.yaml`), "config.merge.accounts"), "accounts");
    for (const t of triggers) {
      expect(t.type).toBe("nats-jetstream");
      expect(accounts).toHaveProperty(String(at(t, "metadata.account")));
      expect(String(at(t, "metadata.natsServerMonitoringEndpoint"))).toMatch(
        /^nats-headless\.jetway\.svc\.cluster\.local:8222$/,
      );
    }
  });
});

describe("infra/k8s/order-housekeeping.yaml", () => {
  const job = (name: string) => {
    const found = objects.find((o) => o.kind === "CronJob" && at(o, "metadata.name") === name);
    return asNode(
      asList(at(found, "spec.jobTemplate.spec.template.spec.containers"), `${name} containers`)[0],
      name,
    );
  };
  const envOf = (c: Node) =>
    Object.fromEntries(asList(c.env, "env").map((e) => [String(at(e, "name")), asNode(e, "env var")]));
  const script = (c: Node) => String(asList(c.args, "args")[0]);

  it("calls the order function where the bridge's order-status routes do, with the admin token's Secret", () => {
    const orderUrls = new Set(
      bridgeConfig()
        .routes.filter((r) => r.name.startsWith("order-status"))
        .map((r) => r.url.replace(/\/events$/, "")),
    );
    expect(orderUrls.size).toBe(1);
    const adminSecret = objects.find((o) => o.kind === "Secret" && at(o, "metadata.name") === "jetway-admin");
    for (const [name, path] of [
      ["order-outbox-flush", "/orders/outbox/flush"],
      ["order-processed-prune", "/orders/processed/prune"],
    ] as const) {
      const env = envOf(job(name));
      expect(orderUrls).toContain(env.ORDER_URL?.value);
      expect(at(env.JETWAY_ADMIN_TOKEN, "valueFrom.secretKeyRef")).toEqual({
        name: "jetway-admin",
        key: "JETWAY_ADMIN_TOKEN",
      });
      expect(asNode(at(adminSecret, "stringData"), "jetway-admin")).toHaveProperty("JETWAY_ADMIN_TOKEN");
      expect(script(job(name))).toContain(`$ORDER_URL${path}`);
    }
    expect(Number(envOf(job("order-processed-prune")).RETENTION_S?.value)).toBeGreaterThanOrEqual(
      MIN_RETENTION_S,
    );
  });

  it("the prune job calls again while the answer says more, and fails when a call fails", () => {
    const dir = mkdtempSync(join(tmpdir(), "jetway-cron-"));
    try {
      // A curl that answers "more" twice, then not; or fails like `curl -f` on a 5xx.
      writeFileSync(
        join(dir, "curl"),
        `#!/bin/sh\necho x >> "${dir}/calls"\n[ "$FAIL" = 1 ] && exit 22\n` +
          `[ $(wc -l < "${dir}/calls") -lt 3 ] && echo '{"deleted":100000,"more":true}' || echo '{"deleted":5,"more":false}'\n`,
        { mode: 0o755 },
      );
      const run = (fail: string) =>
        spawnSync("sh", ["-c", script(job("order-processed-prune"))], {
          env: {
            PATH: `${dir}:${process.env.PATH}`,
            ORDER_URL: "http://x",
            RETENTION_S: "604800",
            FAIL: fail,
          },
          encoding: "utf8",
        });
      expect(run("0").status).toBe(0);
      expect(readFileSync(join(dir, "calls"), "utf8").trim().split("\n")).toHaveLength(3);
      rmSync(join(dir, "calls"));
      expect(run("1").status).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("infra/k8s/nats-values.yaml", () => {
  const values = readYaml(`${DIR}/nats-values.yaml`);

  it("asks for a 3-node cluster with JetStream on persistent file storage and monitoring on 8222", () => {
    expect(at(values, "config.cluster")).toMatchObject({ enabled: true, replicas: 3 });
    expect(at(values, "config.jetstream.fileStore")).toMatchObject({ enabled: true, pvc: { enabled: true } });
    expect(at(values, "config.monitor")).toEqual({ enabled: true, port: 8222 });
  });

  it("defines the bridge user the ConfigMap logs in as, with passwords from the jetway-nats Secret", () => {
    const users = asList(at(values, "config.merge.accounts.JETWAY.users"), "users").map((u) =>
      asNode(u, "user"),
    );
    const nats = bridgeConfig().nats;
    expect(users.map((u) => u.user)).toContain(nats.user);
    const natsSecret = objects.find((o) => o.kind === "Secret" && at(o, "metadata.name") === "jetway-nats");
    const keys = Object.keys(asNode(at(natsSecret, "stringData"), "jetway-nats"));
    for (const [name, ref] of Object.entries(asNode(at(values, "container.env"), "env"))) {
      expect(at(ref, "valueFrom.secretKeyRef")).toEqual({ name: "jetway-nats", key: name });
      expect(keys).toContain(name);
    }
    // Same permissions as the compose cluster's accounts.conf, which nats-auth.test.ts exercises.
    const bridge = users.find((u) => u.user === "bridge");
    const publish = asList(at(bridge, "permissions.publish"), "publish");
    for (const subject of publish)
      expect(readText("infra/nats/accounts.conf")).toContain(`"${String(subject)}"`);
  });
});
