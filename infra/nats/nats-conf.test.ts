import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, NatsServer } from "../../bridge/nats-server.ts";
import { ROOT, readText } from "../testing/manifests.ts";
import { awaitMetaGroup, poll } from "../testing/nats-cluster.ts";

const PASSWORDS = {
  NATS_BRIDGE_PASSWORD: "bridge-pw",
  NATS_ADMIN_PASSWORD: "admin-pw",
  NATS_SYS_PASSWORD: "sys-pw",
};

/**
 * nats-1.conf … nats-3.conf as compose runs them, with only the addresses moved to free loopback ports
 * (compose resolves nats-N by service name; here every node is 127.0.0.1): they must form one JetStream
 * cluster with the shared accounts.
 */
describe("infra/nats: the three node configs form a JetStream cluster", () => {
  let dir: string;
  let nodes: NatsServer[] = [];
  let nc: NatsConnection;
  let monitorPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "jetway-conf-"));
    await copyFile(join(ROOT, "infra/nats/accounts.conf"), join(dir, "accounts.conf"));
    const routePorts = await Promise.all([1, 2, 3].map(() => freePort()));
    const monitorPorts = await Promise.all([1, 2, 3].map(() => freePort()));
    monitorPort = monitorPorts[0] as number;
    const files = await Promise.all(
      [1, 2, 3].map(async (n) => {
        const text = readText(`infra/nats/nats-${n}.conf`)
          .replace(
            /nats-route:\/\/nats-(\d):6222/g,
            (_, peer: string) => `nats-route://127.0.0.1:${routePorts[Number(peer) - 1]}`,
          )
          .replace("listen: 0.0.0.0:6222", `listen: 127.0.0.1:${routePorts[n - 1]}`)
          .replace("http: 0.0.0.0:8222", `http: 127.0.0.1:${monitorPorts[n - 1]}`)
          // NatsServer passes its own temp store with -sd; a second store_dir would be a duplicate.
          .replace("store_dir: /data/jetstream", "");
        const file = join(dir, `nats-${n}.conf`);
        await writeFile(file, text);
        return file;
      }),
    );
    // The configs read passwords from the environment, as in compose; the servers inherit ours.
    Object.assign(process.env, PASSWORDS);
    nodes = await Promise.all(files.map((file) => NatsServer.start({ args: ["-c", file] })));
    await awaitMetaGroup(
      nodes.map((server, i) => ({ name: `nats-${i + 1}`, server, monitorPort: monitorPorts[i] as number })),
    );
    nc = await connect({
      servers: nodes.map((n) => n.url),
      user: "bridge",
      pass: PASSWORDS.NATS_BRIDGE_PASSWORD,
    });
  }, 90_000);

  afterAll(async () => {
    await nc?.close();
    await Promise.all(nodes.map((n) => n.stop()));
    for (const key of Object.keys(PASSWORDS)) delete process.env[key];
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("elects a JetStream meta leader and places an R3 stream on all three named nodes", async () => {
    const jsm = await poll("the JetStream API to answer", async () => jetstreamManager(nc));
    const info = await poll("an R3 stream to be created", async () =>
      jsm.streams.add({ name: "CONF_CHECK", subjects: ["conf_check.>"], num_replicas: 3 }),
    );
    const names = [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)];
    expect(names.sort()).toEqual(["nats-1", "nats-2", "nats-3"]);
    expect(info.cluster?.name).toBe("jetway");
  });

  it("answers the monitoring health check compose uses", async () => {
    const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz?js-enabled-only=true`);
    expect(res.status).toBe(200);
  });
});
