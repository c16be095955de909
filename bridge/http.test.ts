import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { BridgeEvents } from "./events.ts";
import { createHttpApp, type Readiness, startHttpServer } from "./http.ts";
import { createLogger } from "./logger.ts";
import { BridgeMetrics } from "./metrics.ts";
import { watchStatus } from "./nats.ts";
import { NatsServer } from "./nats-server.ts";
import { TurnBatch } from "./turn-batch.ts";

const logger = createLogger({ level: "silent" });
const id = Math.random().toString(36).slice(2, 8).toUpperCase();
let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;

async function appWith(
  http: Record<string, unknown>,
  readiness: () => Readiness = () => ({ ready: true, reasons: [] }),
) {
  const config = parseConfig({ http }, "test", {});
  const events = new BridgeEvents();
  const metrics = new BridgeMetrics(events, { defaultMetrics: false });
  const state = watchStatus(nc, logger);
  const app = createHttpApp({
    ingress: {
      nc,
      js: jetstream(nc),
      http: config.http,
      connected: () => state.connected,
      logger,
      publishTimeoutMs: 2_000,
      publishes: new TurnBatch(),
    },
    metrics,
    readiness,
    logger,
  });
  return { app, events, metrics };
}

const post = (body: string | Uint8Array, headers: Record<string, string> = {}) =>
  ({ method: "POST", body, headers: { "content-type": "application/json", ...headers } }) as const;

beforeAll(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: `IN_${id}`, subjects: [`in_${id}.>`] });
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

describe("POST /v1/publish/<subject>", () => {
  it("publishes the raw body with content type, traceparent and idempotency key", async () => {
    const { app, metrics } = await appWith({});
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const res = await app.request(
      `/v1/publish/in_${id}.created`,
      post('{"a":1}', { traceparent, "idempotency-key": `k-${id}` }),
    );
    expect(res.status).toBe(202);
    const body = (await res.json()) as { stream: string; seq: number; duplicate: boolean };
    expect(body).toMatchObject({ stream: `IN_${id}`, duplicate: false });
    const stored = await jsm.streams.getMessage(`IN_${id}`, { seq: body.seq });
    expect(stored?.string()).toBe('{"a":1}');
    expect(stored?.header.get("Content-Type")).toBe("application/json");
    expect(stored?.header.get("traceparent")).toBe(traceparent);
    expect(stored?.header.get("Nats-Msg-Id")).toBe(`k-${id}`);

    const again = await app.request(
      `/v1/publish/in_${id}.created`,
      post('{"a":1}', { "idempotency-key": `k-${id}` }),
    );
    expect(await again.json()).toMatchObject({ seq: body.seq, duplicate: true });
    expect(await metrics.metrics()).toMatch(/jetway_ingress_publish_total\{status="202"\} 2/);
  });

  it("answers 404 when no stream binds the subject, 400 for reserved subjects", async () => {
    const { app } = await appWith({});
    const res = await app.request(`/v1/publish/nowhere_${id}.x`, post("{}"));
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: "no_stream", message: expect.any(String) } });
    expect((await app.request(`/v1/publish/$JS.API.STREAM.DELETE.IN_${id}`, post("{}"))).status).toBe(400);
    expect((await app.request(`/v1/publish/in_${id}.*`, post("{}"))).status).toBe(400);
    await expect(jsm.streams.info(`IN_${id}`)).resolves.toBeTruthy();
  });

  it("answers 413 over http.max_body and over the server's max payload", async () => {
    const { app } = await appWith({ max_body: 10 });
    expect((await app.request(`/v1/publish/in_${id}.big`, post("x".repeat(11)))).status).toBe(413);
    // Chunked, without Content-Length: the cap applies while reading.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode("xxxx"));
        controller.close();
      },
    });
    const chunked = await app.request(`/v1/publish/in_${id}.big`, {
      method: "POST",
      body: stream,
      duplex: "half",
    });
    expect(chunked.status).toBe(413);
    const { app: wide } = await appWith({});
    const big = new Uint8Array((nc.info?.max_payload ?? 1_048_576) + 1);
    const res = await wide.request(`/v1/publish/in_${id}.big`, post(big));
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("too_large");
  });

  it("answers 401 without and 403 with a wrong bearer token when a publish token is set", async () => {
    const { app } = await appWith({ publish_token: "s3cret" });
    expect((await app.request(`/v1/publish/in_${id}.a`, post("{}"))).status).toBe(401);
    const wrong = await app.request(`/v1/publish/in_${id}.a`, post("{}", { authorization: "Bearer nope" }));
    expect(wrong.status).toBe(403);
    const right = await app.request(`/v1/publish/in_${id}.a`, post("{}", { authorization: "Bearer s3cret" }));
    expect(right.status).toBe(202);
  });
});

describe("POST /v1/publish/<subject> over a real HTTP server (Node's own request)", () => {
  const chunks = (...parts: string[]) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(new TextEncoder().encode(part));
        controller.close();
      },
    });

  it("stores a body sent in chunks, with its headers", async () => {
    const { app } = await appWith({ publish_token: "s3cret" });
    const running = await startHttpServer(app, 0, "127.0.0.1");
    try {
      const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const res = await fetch(`http://127.0.0.1:${running.port}/v1/publish/in_${id}.node`, {
        method: "POST",
        body: chunks('{"part":', '"one",', '"and":"two"}'),
        duplex: "half",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer s3cret",
          traceparent,
          "idempotency-key": `node-${id}`,
        },
      } as RequestInit);
      expect(res.status).toBe(202);
      const { seq } = (await res.json()) as { seq: number };
      const stored = await jsm.streams.getMessage(`IN_${id}`, { seq });
      expect(stored?.string()).toBe('{"part":"one","and":"two"}');
      expect(stored?.header.get("traceparent")).toBe(traceparent);
      expect(stored?.header.get("Nats-Msg-Id")).toBe(`node-${id}`);
      const unauthorized = await fetch(`http://127.0.0.1:${running.port}/v1/publish/in_${id}.node`, {
        method: "POST",
        body: "{}",
      });
      expect(unauthorized.status).toBe(401);
    } finally {
      await running.close();
    }
  });

  it("answers 413 and stores nothing when a chunked body passes http.max_body, then closes the connection", async () => {
    const { app } = await appWith({ max_body: 10 });
    const running = await startHttpServer(app, 0, "127.0.0.1");
    try {
      const before = (await jsm.streams.info(`IN_${id}`)).state.messages;
      const res = await fetch(`http://127.0.0.1:${running.port}/v1/publish/in_${id}.big`, {
        method: "POST",
        body: chunks("xxxx", "xxxx", "xxxx", "xxxx"),
        duplex: "half",
      } as RequestInit);
      expect(res.status).toBe(413);
      expect(res.headers.get("connection")).toBe("close");
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("too_large");
      expect((await jsm.streams.info(`IN_${id}`)).state.messages).toBe(before);
      const fits = await fetch(`http://127.0.0.1:${running.port}/v1/publish/in_${id}.big`, {
        method: "POST",
        body: "0123456789",
      });
      expect(fits.status).toBe(202);
    } finally {
      await running.close();
    }
  });
});

describe("health, readiness and metrics", () => {
  it("healthz is always 200; readyz reflects readiness with reasons", async () => {
    let readiness: Readiness = { ready: false, reasons: ["route ship not bound"] };
    const { app } = await appWith({}, () => readiness);
    expect((await app.request("/healthz")).status).toBe(200);
    const notReady = await app.request("/readyz");
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ ready: false, reasons: ["route ship not bound"] });
    readiness = { ready: true, reasons: [] };
    expect((await app.request("/readyz")).status).toBe(200);
  });

  it("exposes invocation series after lifecycle events", async () => {
    const { app, events, metrics } = await appWith({});
    metrics.setSources({ inFlight: () => ({ ship: 3 }), pending: async () => ({ ship: 42 }) });
    const delivery = {
      route: "ship",
      subject: "s",
      stream: "S",
      seq: 1,
      delivery: 1,
      id: "S:1",
      startedAt: 0,
    };
    events.emit("invoke:outcome", { delivery, outcome: "ack", status: 200, durationMs: 12, emitted: 0 });
    events.emit("dead_letter:published", delivery, "dlq.ship");
    events.emit("batch:delivered", { route: "ship", size: 40, status: 200, durationMs: 3 });
    events.emit("consumer:status", { route: "ship", type: "heartbeats_missed", data: {} });
    events.emit("consumer:status", { route: "ship", type: "next", data: {} });
    const text = await (await app.request("/metrics")).text();
    expect(text).toContain('jetway_invocations_total{route="ship",outcome="ack",status="200"} 1');
    expect(text).toContain('jetway_invocation_duration_seconds_count{route="ship",outcome="ack"} 1');
    expect(text).toContain('jetway_dead_letters_total{route="ship"} 1');
    expect(text).toContain('jetway_in_flight{route="ship"} 3');
    expect(text).toContain('jetway_consumer_pending{route="ship"} 42');
    expect(text).toContain('jetway_batch_size_sum{route="ship"} 40');
    expect(text).toContain('jetway_consumer_notifications_total{route="ship",type="heartbeats_missed"} 1');
    expect(text).not.toContain('type="next"');
  });
});

describe("when NATS is down", () => {
  it("answers 503 and recovers after the server is back", async () => {
    const { app } = await appWith({});
    const statuses = nc.status()[Symbol.asyncIterator]();
    await server.stopProcess();
    for (;;) {
      const s = await statuses.next();
      if (s.done || s.value.type === "disconnect") break;
    }
    const res = await app.request(`/v1/publish/in_${id}.down`, post("{}"));
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: "nats_unavailable" } });
    await server.restart();
    for (;;) {
      const s = await statuses.next();
      if (s.done || s.value.type === "reconnect") break;
    }
    expect((await app.request(`/v1/publish/in_${id}.up`, post("{}"))).status).toBe(202);
  });
});
