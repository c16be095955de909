import { randomUUID } from "node:crypto";
import { AckPolicy, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsCluster, poll } from "./testing/nats-cluster.ts";

/**
 * A 3-node JetStream cluster loses one node (kill -9, the stream leader) and keeps taking and serving
 * an R3 stream with the remaining two; the node comes back, catches up, and nothing is lost or doubled.
 */
describe("3-node JetStream cluster", () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const stream = `CLUSTER_${randomUUID().slice(0, 8)}`;
  const subject = `${stream.toLowerCase()}.events`;

  beforeAll(async () => {
    cluster = await NatsCluster.start(3);
    nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    // The meta leader is elected only after the routes connect; until then the JetStream API times out.
    jsm = await poll("the JetStream API to answer", async () => jetstreamManager(nc));
    await poll("an R3 stream to be created", async () =>
      jsm.streams.add({ name: stream, subjects: [`${stream.toLowerCase()}.>`], num_replicas: 3 }),
    );
  });

  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  const js = () => jetstream(nc, { timeout: 2_000 });

  /** Publishes with a Nats-Msg-Id and retries until acked: a retry that already landed is deduplicated. */
  async function publish(from: number, to: number): Promise<void> {
    for (let i = from; i < to; i++) {
      await poll(`publish #${i}`, async () => js().publish(subject, String(i), { msgID: `m-${i}` }));
    }
  }

  /** Pulls from a durable consumer until `count` distinct messages have been seen, acking each. */
  async function readUntil(durable: string, seen: Set<number>, count: number): Promise<void> {
    await poll(`${count} messages via ${durable}`, async () => {
      const consumer = await js().consumers.get(stream, durable);
      const batch = await consumer.fetch({ max_messages: 50, expires: 1_000 });
      for await (const m of batch) {
        seen.add(Number(m.string()));
        await m.ackAck();
      }
      return seen.size >= count ? true : undefined;
    });
  }

  async function replicasCurrent(): Promise<boolean | undefined> {
    const info = await jsm.streams.info(stream);
    const peers = info.cluster?.replicas ?? [];
    return peers.length === 2 && peers.every((p) => p.current && !p.offline) ? true : undefined;
  }

  it("keeps an R3 stream available through the loss of its leader and loses nothing", async () => {
    await jsm.consumers.add(stream, { durable_name: "reader", ack_policy: AckPolicy.Explicit });
    const seen = new Set<number>();

    await publish(0, 30);
    await readUntil("reader", seen, 30);

    const leader = (await jsm.streams.info(stream)).cluster?.leader;
    expect(leader).toMatch(/^n[123]$/);
    const victim = cluster.node(leader ?? "");
    await victim.stopProcess(true);

    // Two of three is a quorum: publishing and reading go on while the victim is down.
    await publish(30, 60);
    await readUntil("reader", seen, 60);
    const during = await jsm.streams.info(stream);
    expect(during.cluster?.leader).not.toBe(leader);
    // 2.9 reports a dead peer as not current (with growing lag); newer servers also flag it offline.
    expect(during.cluster?.replicas?.find((p) => p.name === leader)?.current).toBe(false);

    await victim.restart();
    await poll("the restarted node to catch up", replicasCurrent, { timeoutMs: 20_000 });
    await publish(60, 90);
    await readUntil("reader", seen, 90);

    const info = await jsm.streams.info(stream);
    expect(info.state.messages).toBe(90);
    expect(info.state.last_seq).toBe(90);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 90 }, (_, i) => i));
  });
});
