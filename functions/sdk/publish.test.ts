import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { RunningHttpServer } from "../../bridge/http.ts";
import { NatsServer } from "../../bridge/nats-server.ts";
import { startIngress } from "../../bridge/testing/ingress.ts";
import { defineEvent } from "../../schemas/define.ts";
import { EmitValidationError } from "./errors.ts";
import { createPublisher, PublishError } from "./publish.ts";

// The SDK's publisher against the real bridge ingress, its signature required, and a real nats-server.
const id = Math.random().toString(36).slice(2, 8);
const Pinged = defineEvent(
  `pub${id}.pinged.v1`,
  z.object({ n: z.number().int(), note: z.string().default("-") }),
);
const Elsewhere = defineEvent(`nowhere${id}.pinged.v1`, z.object({ n: z.number().int() }));
const STREAM = `PUB_${id}`;
const SECRET = "publish-s3cret";
let nats: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let ingress: RunningHttpServer;
let url: string;

beforeAll(async () => {
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: [`pub${id}.>`] });
  ({ url, ...ingress } = await startIngress(nc, { publish_secret: SECRET }));
});

afterAll(async () => {
  await ingress?.close();
  await nc?.close();
  await nats?.stop();
});

const lastSeq = async () => (await jsm.streams.info(STREAM)).state.last_seq;

describe("createPublisher", () => {
  it("signs, validates and publishes a typed event: the contract's output, its id as Nats-Msg-Id", async () => {
    const publisher = createPublisher({ url, secret: SECRET });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await publisher.publish(Pinged, { n: 1 }, { id: `ping-${id}-1`, traceparent });
    const stored = await jsm.streams.getMessage(STREAM, { seq: await lastSeq() });
    expect(stored?.json()).toEqual({ n: 1, note: "-" });
    expect(stored?.subject).toBe(Pinged.subject);
    expect(stored?.header.get("Nats-Msg-Id")).toBe(`ping-${id}-1`);
    expect(stored?.header.get("traceparent")).toBe(traceparent);

    // The same id again is deduplicated by JetStream, and still resolves.
    const before = await lastSeq();
    await publisher.publish(Pinged, { n: 1 }, { id: `ping-${id}-1` });
    expect(await lastSeq()).toBe(before);
  });

  it("refuses data that breaks the contract before anything is sent", async () => {
    const publisher = createPublisher({ url, secret: SECRET });
    const before = await lastSeq();
    // @ts-expect-error n must be a number
    await expect(publisher.publish(Pinged, { n: "one" })).rejects.toBeInstanceOf(EmitValidationError);
    expect(await lastSeq()).toBe(before);
  });

  it("rejects with the ingress's 401 when unsigned or signed with another secret, and stores nothing", async () => {
    const before = await lastSeq();
    for (const secret of [undefined, "wrong"]) {
      const publisher = createPublisher({ url, secret });
      const error = await publisher.publish(Pinged, { n: 2 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PublishError);
      expect((error as PublishError).status).toBe(401);
    }
    expect(await lastSeq()).toBe(before);
  });

  it("publishAll: one request, one result per event, a failure only where the event failed", async () => {
    const publisher = createPublisher({ url, secret: SECRET });
    const before = await lastSeq();
    const results = await publisher.publishAll([
      { type: Pinged, data: { n: 3 } },
      { type: Elsewhere, data: { n: 4 } },
      { type: Pinged, data: { n: 5, note: "last" } },
    ]);
    expect(results[0]).toBe(true);
    expect(results[1]).toBeInstanceOf(PublishError);
    expect((results[1] as PublishError).status).toBe(404);
    expect(results[2]).toBe(true);
    expect(await lastSeq()).toBe(before + 2);
  });

  it("never counts an answer that is not the ingress's as stored, and never rejects for it", async () => {
    const answering =
      (status: number, body: string): typeof fetch =>
      async () =>
        new Response(body, { status, headers: { "content-type": "text/html" } });
    const events = [{ type: Pinged, data: { n: 7 } }];
    for (const [status, body] of [
      [200, "<html>sign in</html>"],
      [207, "<html>gateway error"],
      [207, '{"results":[null]}'],
    ] as const) {
      const publisher = createPublisher({ url, secret: SECRET, fetch: answering(status, body) });
      const [result] = await publisher.publishAll(events);
      expect(result, `${status} ${body}`).toBeInstanceOf(PublishError);
    }
    // An invalid event is a rejection, not a throw past the caller's .catch().
    const publisher = createPublisher({ url, secret: SECRET });
    const invalid = publisher.publishAll([{ type: Pinged, data: { n: "x" } as unknown as { n: number } }]);
    await expect(invalid).rejects.toBeInstanceOf(EmitValidationError);
  });

  it("resolves every event of an unreachable ingress to a PublishError without a status", async () => {
    const publisher = createPublisher({ url: "http://127.0.0.1:9", secret: SECRET, timeoutMs: 1_000 });
    const results = await publisher.publishAll([{ type: Pinged, data: { n: 6 } }]);
    expect(results[0]).toBeInstanceOf(PublishError);
    expect((results[0] as PublishError).status).toBeUndefined();
  });
});
