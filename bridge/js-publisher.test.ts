import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JetStreamApiError, jetstream } from "@nats-io/jetstream";
import { errors, headers, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JetStreamPublisher } from "./js-publisher.ts";
import { NatsServer } from "./nats-server.ts";
import { useHarness } from "./testing/route-fixture.ts";

const { h, cleanups } = useHarness();
let streams = 0;

/** A stream of its own for one test: its name and a subject in it. */
async function stream(config: { max_msg_size?: number } = {}) {
  const name = `PUB_${++streams}_${Math.random().toString(36).slice(2, 6)}`;
  await h.jsm.streams.add({ name, subjects: [`${name.toLowerCase()}.>`], ...config });
  return { name, subject: `${name.toLowerCase()}.x` };
}

describe("JetStreamPublisher", () => {
  it("stores the message with its headers and answers the PubAck; a repeated msgID is a duplicate", async () => {
    const store = new JetStreamPublisher(h.nc, h.js);
    const { name, subject } = await stream();
    const hdrs = headers();
    hdrs.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    const first = await store.publish(subject, '{"n":1}', { msgID: "m-1", headers: hdrs });
    expect(first).toEqual({ stream: name, seq: 1, duplicate: false });
    const again = await store.publish(subject, '{"n":1}', { msgID: "m-1" });
    expect(again).toEqual({ stream: name, seq: 1, duplicate: true });
    const other = await store.publish(subject, new Uint8Array([1, 2]));
    expect(other).toEqual({ stream: name, seq: 2, duplicate: false });
    const stored = await h.jsm.streams.getMessage(name, { seq: 1 });
    expect(stored?.string()).toBe('{"n":1}');
    expect(stored?.header.get("Nats-Msg-Id")).toBe("m-1");
    expect(stored?.header.get("traceparent")).toBe(hdrs.get("traceparent"));
    expect(store.inFlight).toBe(0);
  });

  it("keeps many publishes apart: each gets its own PubAck", async () => {
    const store = new JetStreamPublisher(h.nc, h.js);
    const { subject } = await stream();
    const acks = await Promise.all(Array.from({ length: 500 }, (_, i) => store.publish(subject, String(i))));
    expect(acks.map((a) => a.seq).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 500 }, (_, i) => i + 1),
    );
  });

  it("answers as js.publish does when no stream binds the subject: a RequestError caused by no responders", async () => {
    const store = new JetStreamPublisher(h.nc, h.js);
    const error = await store.publish("nobody.listens.here", "x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(errors.RequestError);
    expect((error as InstanceType<typeof errors.RequestError>).isNoResponders()).toBe(true);
    expect(store.inFlight).toBe(0);
  });

  it("rejects with the server's JetStreamApiError (the stream's max_msg_size)", async () => {
    const store = new JetStreamPublisher(h.nc, h.js);
    const { subject } = await stream({ max_msg_size: 16 });
    const error = await store.publish(subject, "x".repeat(64)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JetStreamApiError);
    expect((error as JetStreamApiError).code).toBe(10054);
  });

  it("rejects a message over the server's max_payload without sending it", async () => {
    const store = new JetStreamPublisher(h.nc, h.js);
    const { subject } = await stream();
    const big = new Uint8Array((h.nc.info?.max_payload ?? 1_048_576) + 1);
    await expect(store.publish(subject, big)).rejects.toBeInstanceOf(errors.InvalidArgumentError);
    expect(store.inFlight).toBe(0);
  });

  it("times out when nothing answers", async () => {
    const store = new JetStreamPublisher(h.nc, h.js);
    // A plain subscriber, not a stream: the server has a responder, so no "no responders", and no PubAck.
    const silent = h.nc.subscribe("silent.subject");
    cleanups.push(async () => silent.unsubscribe());
    await h.nc.flush();
    const started = performance.now();
    await expect(store.publish("silent.subject", "x", { timeout: 300 })).rejects.toBeInstanceOf(
      errors.TimeoutError,
    );
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(store.inFlight).toBe(0);
  });

  it("passes options it does not serve to js.publish (an expectation the server checks)", async () => {
    const store = new JetStreamPublisher(h.nc, h.js);
    const { subject } = await stream();
    await store.publish(subject, "a");
    const wrong = await store.publish(subject, "b", { expect: { lastSequence: 7 } }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(JetStreamApiError);
    await expect(store.publish(subject, "b", { expect: { lastSequence: 1 } })).resolves.toMatchObject({
      seq: 2,
    });
  });

  it("rejects what waits when the connection closes", async () => {
    const nc = await connect({ servers: h.server.url });
    const store = new JetStreamPublisher(nc, jetstream(nc));
    const silent = h.nc.subscribe("silent.closing");
    cleanups.push(async () => silent.unsubscribe());
    await h.nc.flush();
    const waiting = store.publish("silent.closing", "x", { timeout: 10_000 });
    await nc.flush();
    await nc.close();
    await expect(waiting).rejects.toBeInstanceOf(errors.ClosedConnectionError);
    await expect(store.publish("silent.closing", "y")).rejects.toBeInstanceOf(Error);
  });
});

describe("JetStreamPublisher and permissions", () => {
  let dir: string;
  let server: NatsServer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "jetway-perm-"));
    const conf = join(dir, "auth.conf");
    await writeFile(
      conf,
      `authorization { users = [
        { user: bridge, password: s3cret, permissions: {
          publish: { allow: ["allowed.>", "$JS.API.>", "_INBOX.>"] }, subscribe: { allow: ["_INBOX.>"] } } },
        { user: noinbox, password: s3cret, permissions: {
          publish: { allow: ["allowed.>", "$JS.API.>"] }, subscribe: { allow: ["other.>"] } } } ] }\n`,
    );
    server = await NatsServer.start({ args: ["-c", conf] });
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("fails a publish whose reply subscription the server refused, with the server's reason", async () => {
    const nc = await connect({ servers: server.url, user: "noinbox", pass: "s3cret" });
    try {
      const store = new JetStreamPublisher(nc, jetstream(nc));
      await nc.flush();
      const started = performance.now();
      const error = await store.publish("allowed.x", "no", { timeout: 5_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(errors.PermissionViolationError);
      expect(String(error)).toMatch(/subscription/i);
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      await nc.close();
    }
  });

  it("fails a publish the server refuses at once, not after the timeout", async () => {
    let nc: NatsConnection | undefined;
    try {
      nc = await connect({ servers: server.url, user: "bridge", pass: "s3cret" });
      const js = jetstream(nc);
      const jsm = await js.jetstreamManager();
      await jsm.streams.add({ name: "PERM", subjects: ["allowed.>", "denied.>"] });
      const store = new JetStreamPublisher(nc, js);
      await expect(store.publish("allowed.x", "ok")).resolves.toMatchObject({ stream: "PERM", seq: 1 });
      const started = performance.now();
      const error = await store.publish("denied.x", "no", { timeout: 5_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(errors.PermissionViolationError);
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(store.inFlight).toBe(0);
    } finally {
      await nc?.close();
    }
  });
});
