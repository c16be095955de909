import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { expect } from "vitest";
import { JetStreamPublisher } from "../js-publisher.ts";

/** Creates stream `name` on `<name lowercased>.>`, publishes `text` as the bridge does and reads it back. */
export async function expectStoresThroughJetStream(nc: NatsConnection, name: string, text: string) {
  const prefix = name.toLowerCase();
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects: [`${prefix}.>`] });
  const ack = await new JetStreamPublisher(nc, jetstream(nc)).publish(`${prefix}.x`, text);
  expect(ack).toMatchObject({ stream: name, seq: 1 });
  expect((await jsm.streams.getMessage(name, { seq: 1 }))?.string()).toBe(text);
}
