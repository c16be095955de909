import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../bridge/config.ts";
import { findNatsServer, NatsServerNotFoundError } from "../bridge/nats-server.ts";
import {
  asList,
  asNode,
  INFRA,
  type Node,
  ROOT,
  readText,
  readYaml,
  requiredEnv,
} from "./testing/manifests.ts";

const compose = readYaml("infra/compose.yaml", true);
const services = asNode(compose.services, "services");
const service = (name: string): Node => asNode(services[name], `services.${name}`);
const envOf = (name: string): Node => asNode(service(name).environment ?? {}, `${name}.environment`);
/** docker-compose v1 on PATH (Debian's package); `config` parses and validates without an engine. */
const composeBin = ["/usr/bin/docker-compose", "/usr/local/bin/docker-compose"].find((p) => existsSync(p));

describe("infra/compose.yaml", () => {
  it("declares the 3-node NATS cluster, PostgreSQL, the bridge, the functions and the gateway simulator", () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        "audit",
        "bridge",
        "gateway-sim",
        "inventory",
        "nats-1",
        "nats-2",
        "nats-3",
        "order",
        "payment",
        "postgres",
      ].sort(),
    );
  });

  it("references only services, named volumes and files that exist", () => {
    const volumes = new Set(Object.keys(asNode(compose.volumes, "volumes")));
    const usedVolumes = new Set<string>();
    for (const [name, raw] of Object.entries(services)) {
      const svc = asNode(raw, name);
      for (const dep of Object.keys(asNode(svc.depends_on ?? {}, `${name}.depends_on`))) {
        expect(services, `${name} depends on ${dep}`).toHaveProperty(dep);
      }
      for (const mount of asList(svc.volumes ?? [], `${name}.volumes`) as string[]) {
        const source = mount.split(":")[0] ?? "";
        if (source.startsWith("."))
          expect(existsSync(join(INFRA, source)), `${name} mounts ${source}`).toBe(true);
        else {
          expect(volumes, `${name} uses volume ${source}`).toContain(source);
          usedVolumes.add(source);
        }
      }
      if (svc.build) {
        const build = asNode(svc.build, `${name}.build`);
        const context = join(INFRA, String(build.context));
        expect(existsSync(join(context, String(build.dockerfile))), `${name} dockerfile`).toBe(true);
        const fn = asNode(build.args ?? {}, `${name}.build.args`).FUNCTION;
        if (fn !== undefined) {
          expect(fn).toBe(name);
          expect(existsSync(join(ROOT, `functions/${fn}/node.ts`)), `functions/${fn}/node.ts`).toBe(true);
        }
      }
    }
    expect([...usedVolumes].sort()).toEqual([...volumes].sort());
  });

  it("runs each NATS node from its own config file and waits for all three before the bridge", () => {
    for (const n of [1, 2, 3]) {
      expect(service(`nats-${n}`).command).toEqual(["-c", `/etc/nats/nats-${n}.conf`]);
      expect(service(`nats-${n}`).volumes).toContain("./nats:/etc/nats:ro");
      expect(asNode(service("bridge").depends_on, "bridge.depends_on")[`nats-${n}`]).toEqual({
        condition: "service_healthy",
      });
    }
  });

  it("points every bridge route at a function service listening on that port", async () => {
    const file = "infra/bridge.compose.yaml";
    const bridgeEnv = envOf("bridge");
    // Every ${VAR} the mounted config needs is in the bridge container's environment.
    for (const key of requiredEnv(readText(file))) expect(bridgeEnv, key).toHaveProperty(key);
    const env = Object.fromEntries(Object.keys(bridgeEnv).map((k) => [k, "x"]));
    const config = await loadConfig(join(ROOT, file), env);
    for (const route of config.routes) {
      const url = new URL(route.url);
      expect(envOf(url.hostname).PORT, `${route.name} → ${url.host}`).toBe(url.port);
    }
    for (const server of config.nats.servers) expect(services).toHaveProperty(new URL(server).hostname);
    expect(envOf("order").JETWAY_PUBLISH_URL).toBe(`http://bridge:${config.http.port}`);
    // The order function signs its publishes with the key the ingress checks them with.
    expect(envOf("order").JETWAY_PUBLISH_SECRET).toBe(bridgeEnv.JETWAY_PUBLISH_SECRET);
    expect(config.http.publish_secret).toBe("x");
    // Functions verify with the key the bridge signs with.
    for (const fn of ["order", "payment", "inventory", "audit"]) {
      expect(envOf(fn).JETWAY_SECRET).toBe(bridgeEnv.JETWAY_SECRET);
    }
    expect(Number(String(service("bridge").stop_grace_period).replace("s", "")) * 1000).toBeGreaterThan(
      config.shutdown.grace_period,
    );
  });

  it(`is accepted by docker-compose config${composeBin ? "" : " (binary not installed: structural checks above only)"}`, () => {
    if (!composeBin) return;
    const run = spawnSync(composeBin, ["-f", "compose.yaml", "config", "-q"], {
      cwd: INFRA,
      encoding: "utf8",
    });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });
});

describe("infra/nats/*.conf", () => {
  const bin = findNatsServer();
  const passwords = { NATS_BRIDGE_PASSWORD: "b", NATS_ADMIN_PASSWORD: "a", NATS_SYS_PASSWORD: "s" };
  const check = (file: string, env: NodeJS.ProcessEnv) => {
    if (!bin) throw new NatsServerNotFoundError();
    return spawnSync(bin, ["-t", "-c", file], { cwd: join(INFRA, "nats"), env, encoding: "utf8" });
  };

  it.each([1, 2, 3])("nats-%i.conf passes nats-server -t and routes to all three nodes", (n) => {
    const run = check(`nats-${n}.conf`, { PATH: process.env.PATH, ...passwords });
    expect(run.stderr + run.stdout).toContain("is valid");
    expect(run.status).toBe(0);
    const text = readText(`infra/nats/nats-${n}.conf`);
    expect(text).toMatch(new RegExp(`^server_name: nats-${n}$`, "m"));
    for (const peer of [1, 2, 3]) expect(text).toContain(`nats-route://nats-${peer}:6222`);
  });

  it("refuses to start when a password variable is missing", () => {
    const run = check("nats-1.conf", { PATH: process.env.PATH });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/NATS_BRIDGE_PASSWORD/);
  });
});
