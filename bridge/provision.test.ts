import { AckPolicy, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, nanos, TimeoutError } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { NatsServer } from "./nats-server.ts";
import { ProvisionError, provision, versionAtLeast } from "./provision.ts";
import { recreateConsumer } from "./startup.ts";

const logger = createLogger({ level: "silent" });
let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

const uniq = () => Math.random().toString(36).slice(2, 8).toUpperCase();

function configFor(id: string, overrides: { ackWait?: string; filter?: string; deliver?: string } = {}) {
  return parseConfig(
    {
      streams: [{ name: `ORDERS_${id}`, subjects: [`orders_${id}.>`], max_age: "1h" }],
      dead_letter: { stream: `DLQ_${id}`, subject_prefix: `dlq_${id}` },
      routes: [
        {
          name: `ship_${id}`,
          stream: `ORDERS_${id}`,
          url: "http://127.0.0.1:1/ship",
          concurrency: 8,
          ack_wait: overrides.ackWait ?? "30s",
          filter_subject: overrides.filter ?? `orders_${id}.created`,
          deliver_policy: overrides.deliver ?? "all",
        },
      ],
    },
    "test",
    {},
  );
}

describe("provision", () => {
  it("creates streams, the dead-letter stream and a consumer with the settings the bridge relies on", async () => {
    const id = uniq();
    await provision(jsm, configFor(id), nc.info?.version ?? "", logger);
    const stream = await jsm.streams.info(`ORDERS_${id}`);
    expect(stream.config.subjects).toEqual([`orders_${id}.>`]);
    expect(stream.config.max_age).toBe(nanos(3_600_000));
    const dlq = await jsm.streams.info(`DLQ_${id}`);
    expect(dlq.config.subjects).toEqual([`dlq_${id}.>`]);
    const consumer = await jsm.consumers.info(`ORDERS_${id}`, `ship_${id}`);
    expect(consumer.config).toMatchObject({
      durable_name: `ship_${id}`,
      ack_policy: "explicit",
      filter_subject: `orders_${id}.created`,
      ack_wait: nanos(30_000),
      max_ack_pending: 16,
      deliver_policy: "all",
      max_deliver: -1,
    });
    expect(consumer.config.backoff ?? []).toEqual([]);
  });

  it("is idempotent and applies mutable changes on a second run", async () => {
    const id = uniq();
    await provision(jsm, configFor(id), nc.info?.version ?? "", logger);
    await provision(jsm, configFor(id), nc.info?.version ?? "", logger);
    await provision(jsm, configFor(id, { ackWait: "45s" }), nc.info?.version ?? "", logger);
    const consumer = await jsm.consumers.info(`ORDERS_${id}`, `ship_${id}`);
    expect(consumer.config.ack_wait).toBe(nanos(45_000));
    const names: string[] = [];
    for await (const c of jsm.consumers.list(`ORDERS_${id}`)) names.push(c.name);
    expect(names).toEqual([`ship_${id}`]);
  });

  it("refuses an immutable consumer change with an error naming the route and the field", async () => {
    const id = uniq();
    await provision(jsm, configFor(id), nc.info?.version ?? "", logger);
    const error = await provision(
      jsm,
      configFor(id, { deliver: "new" }),
      nc.info?.version ?? "",
      logger,
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ProvisionError);
    expect((error as Error).message).toContain(`route ship_${id}`);
    expect((error as Error).message).toContain("deliver_policy");
  });

  it("refuses a filter change on 2.9, where it cannot be updated in place", async () => {
    const id = uniq();
    await provision(jsm, configFor(id), "2.9.10", logger);
    await expect(
      provision(jsm, configFor(id, { filter: `orders_${id}.paid` }), "2.9.10", logger),
    ).rejects.toThrow(/filter_subject/);
  });

  it("compares server versions", () => {
    expect(versionAtLeast("2.10.3", 2, 10)).toBe(true);
    expect(versionAtLeast("2.9.10", 2, 10)).toBe(false);
    expect(versionAtLeast("3.0.0", 2, 10)).toBe(true);
  });
});

describe("recreateConsumer", () => {
  const version = () => nc.info?.version ?? "2.9.0";

  /** The manager with `consumers.add` failing the first `failures` times, as an API timeout would. */
  function flakyAdd(failures: number): JetStreamManager {
    let left = failures;
    const consumers = new Proxy(jsm.consumers, {
      get(target, key) {
        const value = Reflect.get(target, key) as unknown;
        if (key !== "add" || typeof value !== "function") {
          return typeof value === "function" ? value.bind(target) : value;
        }
        return (...args: unknown[]) => {
          if (left-- > 0) return Promise.reject(new TimeoutError());
          return value.apply(target, args);
        };
      },
    });
    return new Proxy(jsm, {
      get: (target, key) => (key === "consumers" ? consumers : Reflect.get(target, key)),
    });
  }

  /** A provisioned route whose durable was then deleted. */
  async function deletedConsumer() {
    const config = configFor(uniq());
    const route = config.routes[0] as (typeof config.routes)[number];
    await provision(jsm, config, version(), logger);
    await jsm.consumers.delete(route.stream, route.name);
    return route;
  }

  it("tries again while the JetStream API fails, until the deleted durable exists", async () => {
    const route = await deletedConsumer();
    const lines: { msg: string }[] = [];
    const capture = createLogger({
      level: "warn",
      destination: { write: (l: string) => lines.push(JSON.parse(l)) },
    });
    expect(await recreateConsumer(flakyAdd(2), route, version(), capture, () => false)).toBe(true);
    expect((await jsm.consumers.info(route.stream, route.name)).config.durable_name).toBe(route.name);
    const retry = `recreating route ${route.name}'s deleted consumer: not ready yet, retrying`;
    expect(lines.map((l) => l.msg)).toEqual([retry, retry]);
  });

  it("gives up at once when the server refuses the config, and when the bridge stops", async () => {
    const route = await deletedConsumer();
    // A consumer backoff the bridge refuses to work with: not an API failure, so no retrying.
    await jsm.consumers.add(route.stream, {
      durable_name: route.name,
      ack_policy: AckPolicy.Explicit,
      filter_subject: route.filter_subject,
      backoff: [nanos(1_000), nanos(2_000)],
      max_deliver: 5,
    });
    expect(await recreateConsumer(jsm, route, version(), logger, () => false)).toBe(false);
    await jsm.consumers.delete(route.stream, route.name);
    // Failing for good: it keeps trying until the bridge stops (here after two attempts).
    let checks = 0;
    expect(await recreateConsumer(flakyAdd(1_000), route, version(), logger, () => checks++ >= 2)).toBe(
      false,
    );
    expect(checks).toBe(3);
  });
});
