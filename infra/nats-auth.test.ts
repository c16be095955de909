import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, parseConfig, type RouteConfig } from "../bridge/config.ts";
import { RouteConsumer } from "../bridge/consumer.ts";
import { openControl, PauseWatcher, pauseKey } from "../bridge/control.ts";
import { BridgeEvents } from "../bridge/events.ts";
import { JetStreamPublisher } from "../bridge/js-publisher.ts";
import { startBridge } from "../bridge/main.ts";
import { connectionOptions } from "../bridge/nats.ts";
import { NatsServer } from "../bridge/nats-server.ts";
import { openPresence, Presence, presenceBucket } from "../bridge/presence.ts";
import { provision } from "../bridge/provision.ts";
import { serverFeatures } from "../bridge/server-features.ts";
import { HttpFunction } from "../bridge/testing/http-function.ts";
import { pauseRecorder } from "../bridge/testing/pauses.ts";
import { ShareRecorder } from "../bridge/testing/presence.ts";
import { readText, readYaml } from "./testing/manifests.ts";
import { poll } from "./testing/nats-cluster.ts";

/**
 * The accounts in infra/nats/accounts.conf (shared by the compose cluster; the Helm values repeat them)
 * let the `bridge` user do everything the bridge does — provision, consume, ack, publish emitted events
 * and dead letters — with the dev config's streams, and nothing beyond its permissions.
 */
describe("infra/nats/accounts.conf: the bridge user", () => {
  const silent = pino({ level: "silent" });
  const password = "bridge-test-password";
  let dir: string;
  let server: NatsServer;
  let nc: NatsConnection;
  let fn: HttpFunction;
  let config: Config;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "jetway-auth-"));
    // nats-server resolves $VARs from earlier in the same file, so the passwords go in front.
    const vars = `NATS_BRIDGE_PASSWORD: "${password}"\nNATS_ADMIN_PASSWORD: "a"\nNATS_SYS_PASSWORD: "s"\n`;
    await writeFile(join(dir, "nats.conf"), vars + readText("infra/nats/accounts.conf"));
    server = await NatsServer.start({ args: ["-c", join(dir, "nats.conf")] });
    fn = await HttpFunction.start((req) => {
      if (req.body.toString().includes("bad")) return { status: 400, body: { error: "bad order" } };
      return { status: 200, body: { events: [{ subject: "payments.completed.v1", data: { ok: true } }] } };
    });
    const raw = readYaml("infra/bridge.dev.yaml");
    config = parseConfig(
      { ...raw, nats: { servers: [server.url], user: "bridge", pass: password } },
      "infra/bridge.dev.yaml",
      {},
    );
    nc = await connect(await connectionOptions(config.nats));
  });

  afterAll(async () => {
    await nc?.close();
    await fn?.close();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("provisions the dev streams, consumes, publishes emitted events and dead letters", async () => {
    const jsm = await jetstreamManager(nc);
    await provision(jsm, config, nc.info?.version ?? "2.9.0", silent);
    // One message per request, as the stand-in function answers (the dev route delivers batches).
    const { batch: _batch, ...route } = config.routes.find((r) => r.name === "payment") as RouteConfig;
    const consumer = new RouteConsumer({
      js: jetstream(nc),
      // As main.ts wires it: events and dead letters through the bridge's own publisher.
      store: new JetStreamPublisher(nc, jetstream(nc)),
      route: { ...route, url: fn.url },
      deadLetter: config.dead_letter,
      events: new BridgeEvents(),
      logger: silent,
      features: serverFeatures(nc.info?.version ?? "2.9.0"),
    });
    await consumer.start();
    try {
      const js = jetstream(nc);
      await js.publish("orders.created.v1", JSON.stringify({ order: "good" }), { msgID: "o-1" });
      await js.publish("orders.created.v1", JSON.stringify({ order: "bad" }), { msgID: "o-2" });
      await poll("one emitted event and one dead letter", async () => {
        const [payments, dlq] = await Promise.all([jsm.streams.info("PAYMENTS"), jsm.streams.info("DLQ")]);
        return payments.state.messages === 1 && dlq.state.messages === 1 ? true : undefined;
      });
      const letter = await jsm.streams.getMessage("DLQ", { seq: 1 });
      expect(letter?.subject).toBe("dlq.payment");
      await poll("the payment consumer to be fully acked", async () => {
        const info = await jsm.consumers.info("ORDERS", "payment");
        return info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
      });
    } finally {
      await consumer.stop(1_000);
    }
  });

  it("creates and watches the control bucket, and may write it as `jetway pause` does", async () => {
    const kv = await openControl(nc, config.control);
    const { calls: paused, routes } = pauseRecorder("payment");
    const watcher = new PauseWatcher(kv, routes, silent);
    await watcher.start();
    // The CLI's connection: the same user, as `jetway pause` run in the bridge's pod has.
    const cli = await connect(await connectionOptions(config.nats));
    try {
      const control = await openControl(cli, config.control);
      await control.put(
        pauseKey("payment"),
        JSON.stringify({ reason: "maintenance", at: new Date().toISOString() }),
      );
      await poll("the pause to arrive", async () => (paused.includes("maintenance") ? true : undefined));
      await control.delete(pauseKey("payment"));
      await poll("the resume to arrive", async () => (paused.at(-1) === "resumed" ? true : undefined));
    } finally {
      watcher.stop();
      await cli.close();
    }
  });

  it("announces itself in the presence bucket of a rate-limited route, and removes itself on stop", async () => {
    const kv = await openPresence(nc, config.control);
    const jsm = await jetstreamManager(nc);
    const route = new ShareRecorder();
    const presence = new Presence({
      kv,
      jsm,
      bucket: presenceBucket(config.control),
      routes: new Map([["payment", route]]),
      rateLimited: new Set(["payment"]),
      log: silent,
      intervalMs: 100,
    });
    await presence.start();
    const stream = `KV_${presenceBucket(config.control)}`;
    try {
      expect(route.seen).toEqual([1]);
      expect((await jsm.streams.info(stream)).state.messages).toBeGreaterThanOrEqual(1);
    } finally {
      await presence.stop();
    }
    expect((await jsm.streams.info(stream)).state.messages).toBe(0);
  });

  it("may not subscribe to application subjects directly (permissions are enforced)", async () => {
    const sub = nc.subscribe("orders.>");
    const closed = await sub.closed;
    expect(String(closed)).toMatch(/permissions violation/i);
  });

  it("cannot log in with a wrong password", async () => {
    await expect(
      connect({ servers: server.url, user: "bridge", pass: "wrong", reconnect: false }),
    ).rejects.toThrow(/authorization/i);
  });
});

/**
 * A bridge user whose permissions predate the presence bucket: a bridge without a rate-limited route still
 * starts (presence only informs `jetway status`); one with a rate limit to share refuses to, naming why.
 */
describe("a bridge user without the presence bucket's subjects", () => {
  const password = "bridge-test-password";
  let dir: string;
  let server: NatsServer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "jetway-auth-old-"));
    const vars = `NATS_BRIDGE_PASSWORD: "${password}"\nNATS_ADMIN_PASSWORD: "a"\nNATS_SYS_PASSWORD: "s"\n`;
    const accounts = readText("infra/nats/accounts.conf");
    const older = accounts.replace('"$KV.jetway-control-presence.>", ', "");
    expect(older).not.toBe(accounts);
    await writeFile(join(dir, "nats.conf"), vars + older);
    server = await NatsServer.start({ args: ["-c", join(dir, "nats.conf")] });
  });

  afterAll(async () => {
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const bridgeConfig = (route: Record<string, unknown>) =>
    parseConfig(
      {
        nats: { servers: [server.url], user: "bridge", pass: password, startup_wait: "2s" },
        http: { port: 0, host: "127.0.0.1" },
        streams: [{ name: "ORDERS", subjects: ["orders.>"] }],
        routes: [{ name: "payment", stream: "ORDERS", url: "http://127.0.0.1:9/events", ...route }],
      },
      "test",
      {},
    );

  it("starts a bridge without a rate limit, and refuses to start one with a rate limit to share", async () => {
    const bridge = await startBridge(bridgeConfig({}), { logger: pino({ level: "silent" }) });
    try {
      expect(bridge.readiness().reasons).not.toContain("nats disconnected");
    } finally {
      await bridge.shutdown();
    }
    await expect(
      startBridge(bridgeConfig({ rate_limit: "10/s" }), { logger: pino({ level: "silent" }) }),
    ).rejects.toThrow(/Permissions Violation for Publish to "\$KV\.jetway-control-presence\.payment\./);
  });
});
