import { randomBytes } from "node:crypto";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { awaitMetaGroup } from "../infra/testing/nats-cluster.ts";
import { parseConfig } from "./config.ts";
import { freePort, NatsServer } from "./nats-server.ts";
import { ProvisionError } from "./provision.ts";
import { connectAndProvision } from "./startup.ts";
import { waitFor } from "./testing/http-function.ts";

interface Line {
  level: number;
  msg: string;
  step?: string;
}

function capturingLogger(): { logger: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s) as Line) });
  return { logger, lines };
}

const WARN = 40;
const ERROR = 50;

function configFor(servers: string[], replicas: number, startupWait: string) {
  const id = randomBytes(3).toString("hex");
  return parseConfig(
    {
      nats: { servers, startup_wait: startupWait, connect_timeout: "2s" },
      streams: [{ name: `UP_${id}`, subjects: [`up_${id}.>`], replicas }],
      dead_letter: { stream: `UPDLQ_${id}`, subject_prefix: `updlq_${id}`, replicas },
      routes: [{ name: "r", stream: `UP_${id}`, url: "http://127.0.0.1:9/events" }],
    },
    "startup test",
    {},
  );
}

/** Resolves to "pending" when `promise` has not settled within `ms`. */
const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise, new Promise<"pending">((r) => setTimeout(() => r("pending"), ms))]);

/** Waits until a warning for `step` has been logged. */
const warned = (lines: Line[], step: string, timeoutMs: number) =>
  waitFor(`a "${step}" warning`, () => lines.some((l) => l.level === WARN && l.step === step), timeoutMs);

describe("start-up waits for NATS and JetStream", () => {
  const servers: NatsServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  it("waits for a server that is not listening yet, then connects and provisions", async () => {
    const port = await freePort();
    const config = configFor([`nats://127.0.0.1:${port}`], 1, "60s");
    const { logger, lines } = capturingLogger();
    const started = connectAndProvision(config, logger);
    await warned(lines, "connecting to NATS", 5_000);
    expect(await within(started, 0)).toBe("pending");

    servers.push(await NatsServer.start({ port }));
    const { nc, jsm } = await started;
    expect((await jsm.streams.info(config.streams[0]?.name ?? "")).config.num_replicas).toBe(1);
    await nc.close();
  }, 30_000);

  it("waits for a cluster's JetStream to elect a leader and place R3 streams", async () => {
    const routePorts = await Promise.all([1, 2, 3].map(() => freePort()));
    const monitorPorts = await Promise.all([1, 2, 3].map(() => freePort()));
    const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`);
    const cluster = (i: number) => ({
      serverName: `n${i + 1}`,
      cluster: { name: `up-${process.pid}`, port: routePorts[i] as number, routes },
      args: ["-m", String(monitorPorts[i])],
    });
    // One node of three: it listens, but JetStream has no quorum, so every API request times out.
    const first = await NatsServer.start(cluster(0));
    servers.push(first);
    const config = configFor([first.url], 3, "60s");
    const { logger, lines } = capturingLogger();
    const started = connectAndProvision(config, logger);
    // The first request waits out nats.js's JetStream timeout (5 s) before it counts as "not yet".
    await warned(lines, "reaching JetStream", 15_000);
    expect(await within(started, 0)).toBe("pending");

    const others = await Promise.all([1, 2].map((i) => NatsServer.start(cluster(i))));
    servers.push(...others);
    // 2.10 can form the meta group without one node, for good: restarted as an operator would (README).
    await awaitMetaGroup(
      [first, ...others].map((server, i) => ({
        name: `n${i + 1}`,
        server,
        monitorPort: monitorPorts[i] as number,
      })),
    );
    const { nc, jsm } = await started;
    const info = await jsm.streams.info(config.streams[0]?.name ?? "");
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.replicas).toHaveLength(2);
    await nc.close();
  }, 90_000);

  it("fails at once when JetStream refuses what was asked, however long it may wait", async () => {
    const server = await NatsServer.start();
    servers.push(server);
    // A single server without clustering cannot hold replicas: a refusal, not a "not yet".
    const config = configFor([server.url], 3, "60s");
    const { logger, lines } = capturingLogger();
    const outcome = await within(
      connectAndProvision(config, logger).catch((error: unknown) => error),
      10_000,
    );
    expect(outcome).toBeInstanceOf(ProvisionError);
    expect((outcome as Error).message).toMatch(/replicas/i);
    expect(lines.filter((l) => l.level === WARN)).toHaveLength(0);
  }, 20_000);

  it("gives up after nats.startup_wait with the last error, and says so", async () => {
    const port = await freePort();
    const config = configFor([`nats://127.0.0.1:${port}`], 1, "700ms");
    const { logger, lines } = capturingLogger();
    const error = await connectAndProvision(config, logger).then(
      () => new Error("connected"),
      (e: unknown) => e as Error,
    );
    expect(error.message).toMatch(/cannot connect to NATS.*connection refused/);
    expect(lines.filter((l) => l.level === WARN).length).toBeGreaterThanOrEqual(2);
    expect(lines.at(-1)).toMatchObject({ level: ERROR, step: "connecting to NATS" });
  }, 20_000);

  it("closes the connection it made when provisioning fails", async () => {
    const monitor = await freePort();
    const server = await NatsServer.start({ args: ["-m", String(monitor)] });
    servers.push(server);
    const config = configFor([server.url], 3, "0s");
    const { logger } = capturingLogger();
    await expect(connectAndProvision(config, logger)).rejects.toBeInstanceOf(ProvisionError);
    // The server drops a closed client a moment after the client is done with it (seen on 2.10).
    const connections = async () =>
      ((await (await fetch(`http://127.0.0.1:${monitor}/connz`)).json()) as { num_connections: number })
        .num_connections;
    await waitFor("the server to have no client connection", async () => (await connections()) === 0, 2_000);
  });
});
