import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { NatsServer } from "./nats-server.ts";
import { ProvisionError, provision, versionAtLeast } from "./provision.ts";

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
