import { readFileSync } from "node:fs";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { Hono } from "hono";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signBatch, signIngressRequest } from "../functions/sdk/contract.ts";
import { parseConfig } from "./config.ts";
import { BridgeEvents } from "./events.ts";
import { createHttpApp, type Readiness, startHttpServer } from "./http.ts";
import { JetStreamPublisher } from "./js-publisher.ts";
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
  publishes = new TurnBatch(),
) {
  const config = parseConfig({ http }, "test", {});
  const events = new BridgeEvents();
  const metrics = new BridgeMetrics(events, { defaultMetrics: false });
  const state = watchStatus(nc, logger);
  const app = createHttpApp({
    ingress: {
      nc,
      store: new JetStreamPublisher(nc, jetstream(nc)),
      http: config.http,
      deadLetterPrefix: config.dead_letter.subject_prefix,
      connected: () => state.connected,
      logger,
      publishTimeoutMs: 2_000,
      publishes,
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
    // Dead letters come from the bridge only: redrive trusts the subject they name.
    const forged = await app.request("/v1/publish/dlq.payment", post("{}"));
    expect(forged.status).toBe(400);
    expect(await forged.json()).toEqual({
      error: {
        code: "invalid_subject",
        message: "subject dlq.payment is a dead-letter subject (dlq.>): only the bridge publishes there",
      },
    });
  });

  it("answers 503 for a stream that is full (discard: new), not 404", async () => {
    const { app } = await appWith({});
    await jsm.streams.add({ name: `FULL_${id}`, subjects: [`full_${id}.>`], max_msgs: 1, discard: "new" });
    try {
      expect((await app.request(`/v1/publish/full_${id}.a`, post("{}"))).status).toBe(202);
      const full = await app.request(`/v1/publish/full_${id}.a`, post("{}"));
      expect(full.status).toBe(503);
      expect(await full.json()).toMatchObject({ error: { code: "stream_unavailable" } });
    } finally {
      await jsm.streams.delete(`FULL_${id}`);
    }
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
    // A body that fits, but not with the message's headers: NATS refuses it before sending, still a 413.
    const fitsAlone = new Uint8Array(nc.info?.max_payload ?? 1_048_576);
    const withHeaders = await wide.request(`/v1/publish/in_${id}.big`, post(fitsAlone));
    expect(withHeaders.status).toBe(413);
    expect(await withHeaders.json()).toEqual({
      error: { code: "too_large", message: "message with its headers exceeds the server's max_payload" },
    });
  });

  it("answers 401 without and 403 with a wrong bearer token when a publish token is set", async () => {
    const { app } = await appWith({ publish_token: "s3cret" });
    expect((await app.request(`/v1/publish/in_${id}.a`, post("{}"))).status).toBe(401);
    const wrong = await app.request(`/v1/publish/in_${id}.a`, post("{}", { authorization: "Bearer nope" }));
    expect(wrong.status).toBe(403);
    const right = await app.request(`/v1/publish/in_${id}.a`, post("{}", { authorization: "Bearer s3cret" }));
    expect(right.status).toBe(202);
    const lower = await app.request(`/v1/publish/in_${id}.a`, post("{}", { authorization: "bearer s3cret" }));
    expect(lower.status).toBe(202);
  });
});

interface BatchResult {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code: string; status: number; message: string };
}
interface BatchAnswer {
  results: BatchResult[];
  error?: { code: string; message: string };
}

const batch = (events: unknown[], headers: Record<string, string> = {}) =>
  post(JSON.stringify({ events }), headers);
const storedCount = async () => (await jsm.streams.info(`IN_${id}`)).state.messages;

describe("POST /v1/publish (a batch of events)", () => {
  it("stores every event with its data, id, content type and trace context, answering results in order", async () => {
    const { app, metrics } = await appWith({});
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const own = "00-11111111111111111111111111111111-2222222222222222-01";
    const res = await app.request(
      "/v1/publish",
      batch(
        [
          { subject: `in_${id}.batch.created`, data: { order: 1 }, id: `b1-${id}` },
          { subject: `in_${id}.batch.created`, data: [2, "two"], headers: { traceparent: own, "x-k": "v" } },
          { subject: `in_${id}.batch.empty` },
        ],
        { traceparent, tracestate: "k=v" },
      ),
    );
    expect(res.status).toBe(202);
    const { results } = (await res.json()) as BatchAnswer;
    expect(results).toHaveLength(3);
    for (const r of results)
      expect(r).toEqual({ stream: `IN_${id}`, seq: expect.any(Number), duplicate: false });
    const [first, second, third] = await Promise.all(
      results.map((r) => jsm.streams.getMessage(`IN_${id}`, { seq: r.seq as number })),
    );
    expect(first?.subject).toBe(`in_${id}.batch.created`);
    expect(first?.json()).toEqual({ order: 1 });
    expect(first?.header.get("Content-Type")).toBe("application/json");
    expect(first?.header.get("Nats-Msg-Id")).toBe(`b1-${id}`);
    expect(first?.header.get("traceparent")).toBe(traceparent);
    expect(first?.header.get("tracestate")).toBe("k=v");
    expect(second?.json()).toEqual([2, "two"]);
    expect(second?.header.get("traceparent")).toBe(own);
    expect(second?.header.get("x-k")).toBe("v");
    expect(second?.header.get("Nats-Msg-Id")).toBe("");
    expect(third?.subject).toBe(`in_${id}.batch.empty`);
    expect(third?.data.length).toBe(0);
    expect(await metrics.metrics()).toMatch(/jetway_ingress_publish_total\{status="202"\} 1\n/);
  });

  it("starts all publishes of a request in one TurnBatch call", async () => {
    let runs = 0;
    class CountingBatch extends TurnBatch {
      override run<T>(call: () => Promise<T>): Promise<T> {
        runs++;
        return super.run(call);
      }
    }
    const { app } = await appWith({}, undefined, new CountingBatch());
    const events = Array.from({ length: 5 }, (_, i) => ({ subject: `in_${id}.batch.turn`, data: i }));
    const res = await app.request("/v1/publish", batch(events));
    expect(res.status).toBe(202);
    expect(runs).toBe(1);
  });

  it("reports an event whose id was already stored as duplicate", async () => {
    const { app } = await appWith({});
    const events = [
      { subject: `in_${id}.batch.dup`, data: 1, id: `dup-a-${id}` },
      { subject: `in_${id}.batch.dup`, data: 2, id: `dup-b-${id}` },
    ];
    const first = (await (await app.request("/v1/publish", batch(events))).json()) as BatchAnswer;
    expect(first.results.map((r) => r.duplicate)).toEqual([false, false]);
    const fresh = { subject: `in_${id}.batch.dup`, data: 3, id: `dup-c-${id}` };
    const again = await app.request("/v1/publish", batch([events[1], fresh]));
    expect(again.status).toBe(202);
    const { results } = (await again.json()) as BatchAnswer;
    expect(results[0]).toEqual({ stream: `IN_${id}`, seq: first.results[1]?.seq, duplicate: true });
    expect(results[1]).toMatchObject({ duplicate: false });
  });

  it("answers 207 when one event has no stream: that entry is no_stream, the others are stored", async () => {
    const { app, metrics } = await appWith({});
    const res = await app.request(
      "/v1/publish",
      batch([
        { subject: `in_${id}.batch.partial`, data: "a" },
        { subject: `nowhere_${id}.x`, data: "b" },
        { subject: `in_${id}.batch.partial`, data: "c" },
      ]),
    );
    expect(res.status).toBe(207);
    const { results, error } = (await res.json()) as BatchAnswer;
    expect(error).toBeUndefined();
    expect(results[1]).toEqual({ error: { code: "no_stream", status: 404, message: expect.any(String) } });
    for (const [i, data] of [
      [0, "a"],
      [2, "c"],
    ] as const) {
      const stored = await jsm.streams.getMessage(`IN_${id}`, { seq: results[i]?.seq as number });
      expect(stored?.json()).toBe(data);
    }
    expect(await metrics.metrics()).toMatch(/jetway_ingress_publish_total\{status="207"\} 1\n/);
  });

  it("answers 207 with a 413 entry for an event over its stream's max_msg_size", async () => {
    await jsm.streams.add({ name: `SMALL_${id}`, subjects: [`small_${id}.>`], max_msg_size: 64 });
    const { app } = await appWith({});
    const res = await app.request(
      "/v1/publish",
      batch([
        { subject: `small_${id}.a`, data: "fits" },
        { subject: `small_${id}.b`, data: "x".repeat(100) },
      ]),
    );
    expect(res.status).toBe(207);
    const { results } = (await res.json()) as BatchAnswer;
    expect(results[0]).toMatchObject({ stream: `SMALL_${id}`, duplicate: false });
    expect(results[1]).toEqual({
      error: {
        code: "too_large",
        status: 413,
        message: "message with its headers exceeds the stream's max_msg_size",
      },
    });
    expect((await jsm.streams.info(`SMALL_${id}`)).state.messages).toBe(1);
  });

  it("answers 404 with the error body and the results when no event has a stream", async () => {
    const { app } = await appWith({});
    const res = await app.request(
      "/v1/publish",
      batch([
        { subject: `nowhere_${id}.a`, data: 1 },
        { subject: `nowhere_${id}.b`, data: 2 },
      ]),
    );
    expect(res.status).toBe(404);
    const body = (await res.json()) as BatchAnswer;
    expect(body.error).toEqual({ code: "no_stream", message: expect.any(String) });
    expect(body.results.map((r) => r.error?.code)).toEqual(["no_stream", "no_stream"]);
  });

  it("answers 400 and publishes nothing for invalid JSON, invalid events, reserved subjects, none or too many", async () => {
    const { app } = await appWith({});
    const before = await storedCount();
    const ok = { subject: `in_${id}.batch.bad`, data: 1 };
    const cases: [RequestInit, string, RegExp][] = [
      [post('{"events": ['), "invalid_body", /not valid JSON/],
      [post('["not", "an", "object"]'), "invalid_body", /JSON object/],
      [batch([ok, { subject: `in_${id}.*`, data: 1 }]), "invalid_subject", /events\[1\]\.subject/],
      [batch([ok, { subject: `in_${id}..x`, data: 1 }]), "invalid_subject", /events\[1\]\.subject/],
      [
        batch([ok, { subject: `$JS.API.STREAM.DELETE.IN_${id}`, data: 1 }]),
        "invalid_subject",
        /events\[1\]\.subject/,
      ],
      [batch([ok, { subject: "_INBOX.abc", data: 1 }]), "invalid_subject", /events\[1\]\.subject/],
      [batch([ok, { data: 1 }]), "invalid_subject", /events\[1\]\.subject/],
      [
        batch([ok, { subject: "dlq.payment", data: 1 }]),
        "invalid_subject",
        /events\[1\]\.subject dlq\.payment is a dead-letter/,
      ],
      [batch([ok, { ...ok, id: "" }]), "invalid_body", /events\[1\]\.id/],
      [batch([ok, { ...ok, headers: { "bad name": "v" } }]), "invalid_body", /events\[1\]\.headers/],
      [batch([ok, { ...ok, headers: { "x-a:b": "v" } }]), "invalid_body", /events\[1\]\.headers/],
      [batch([ok, { ...ok, headers: { "x-ok": "a\r\nb" } }]), "invalid_body", /events\[1\]\.headers/],
      [batch([]), "invalid_body", /at least one event/],
      [post("{}"), "invalid_body", /at least one event/],
      [batch(Array.from({ length: 1_001 }, () => ok)), "invalid_body", /at most 1000 events/],
    ];
    for (const [init, code, message] of cases) {
      const res = await app.request("/v1/publish", init);
      expect(res.status, String(init.body).slice(0, 80)).toBe(400);
      const { error } = (await res.json()) as BatchAnswer;
      expect(error?.code, String(init.body).slice(0, 80)).toBe(code);
      expect(error?.message).toMatch(message);
    }
    expect(await storedCount()).toBe(before);
    await expect(jsm.streams.info(`IN_${id}`)).resolves.toBeTruthy();
  });

  it("answers 413 over http.max_body, counting the whole batch", async () => {
    const { app } = await appWith({ max_body: 100 });
    const before = await storedCount();
    const events = Array.from({ length: 3 }, () => ({ subject: `in_${id}.batch.big`, data: "x".repeat(30) }));
    const res = await app.request("/v1/publish", batch(events));
    expect(res.status).toBe(413);
    expect(((await res.json()) as BatchAnswer).error?.code).toBe("too_large");
    expect(await storedCount()).toBe(before);
    expect((await app.request("/v1/publish", batch(events.slice(0, 1)))).status).toBe(202);
  });

  it("answers 401 without and 403 with a wrong bearer token when a publish token is set", async () => {
    const { app } = await appWith({ publish_token: "s3cret" });
    const events = [{ subject: `in_${id}.batch.auth`, data: 1 }];
    expect((await app.request("/v1/publish", batch(events))).status).toBe(401);
    expect((await app.request("/v1/publish", batch(events, { authorization: "Bearer nope" }))).status).toBe(
      403,
    );
    expect((await app.request("/v1/publish", batch(events, { authorization: "Bearer s3cret" }))).status).toBe(
      202,
    );
  });
});

describe("signed ingress requests (http.publish_secret)", () => {
  const SECRET = "sign-s3cret";
  const single = `/v1/publish/in_${id}.signed`;
  const body = '{"signed":true}';
  const batchBody = JSON.stringify({ events: [{ subject: `in_${id}.signed`, data: { signed: "batch" } }] });
  const signed = async (path: string, text: string, secret = SECRET, nowS?: number) => ({
    "x-jetway-signature": await signIngressRequest(secret, path, text, nowS),
  });
  const codeOf = async (res: Response) =>
    ((await res.json()) as { error: { code: string; message: string } }).error;

  it("stores a request signed over its path and body, on both endpoints", async () => {
    const { app } = await appWith({ publish_secret: SECRET });
    const before = await storedCount();
    const one = await app.request(single, post(body, await signed(single, body)));
    expect(one.status).toBe(202);
    const many = await app.request("/v1/publish", post(batchBody, await signed("/v1/publish", batchBody)));
    expect(many.status).toBe(202);
    expect(await storedCount()).toBe(before + 2);
  });

  it("answers 401 invalid_signature, storing nothing, when the signature is missing, stale, for another path, body or secret", async () => {
    const { app } = await appWith({ publish_secret: SECRET });
    const before = await storedCount();
    const stale = Math.floor(Date.now() / 1000) - 301;
    const cases: [string, Record<string, string>, RegExp][] = [
      [body, {}, /missing/],
      [body, { "x-jetway-signature": "v1=abc" }, /malformed/],
      [body, await signed(single, body, SECRET, stale), /from now/],
      [body, await signed(`/v1/publish/in_${id}.other`, body), /does not match/],
      [body, await signed(single, '{"signed":false}'), /does not match/],
      [body, await signed(single, body, "other"), /does not match/],
      // A delivery's signature (`<t>.<body>`, no path) is not a publish signature under the same secret.
      [body, { "x-jetway-signature": await signBatch(SECRET, body) }, /does not match/],
    ];
    for (const [text, headers, message] of cases) {
      const res = await app.request(single, post(text, headers));
      expect(res.status).toBe(401);
      const error = await codeOf(res);
      expect(error.code).toBe("invalid_signature");
      expect(error.message).toMatch(message);
    }
    // The batch endpoint's signature does not pass for a single-subject publish, nor the reverse.
    const forBatch = await signed("/v1/publish", body);
    expect((await app.request(single, post(body, forBatch))).status).toBe(401);
    const forSingle = await signed(single, batchBody);
    expect((await app.request("/v1/publish", post(batchBody, forSingle))).status).toBe(401);
    expect(await storedCount()).toBe(before);
  });

  it("accepts a signature under any key of a publish_secret list (rotation), and no other", async () => {
    const { app } = await appWith({ publish_secret: ["new-key", SECRET] });
    for (const key of ["new-key", SECRET]) {
      expect((await app.request(single, post(body, await signed(single, body, key)))).status).toBe(202);
    }
    expect((await app.request(single, post(body, await signed(single, body, "retired")))).status).toBe(401);
  });

  it("with both a token and a secret set, requires both", async () => {
    const { app } = await appWith({ publish_secret: SECRET, publish_token: "tok" });
    const sig = await signed(single, body);
    expect((await app.request(single, post(body, sig))).status).toBe(401);
    expect((await app.request(single, post(body, { authorization: "Bearer tok" }))).status).toBe(401);
    expect((await app.request(single, post(body, { ...sig, authorization: "Bearer tok" }))).status).toBe(202);
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

  it("serves HTTPS with http.tls: a publish over TLS is stored, plain HTTP gets no answer", async () => {
    const { app } = await appWith({ publish_token: "s3cret" });
    const tls = new URL("./testing/tls/", import.meta.url).pathname;
    const running = await startHttpServer(app, 0, "127.0.0.1", {
      cert_file: `${tls}server.pem`,
      key_file: `${tls}server-key.pem`,
    });
    const dispatcher = new Agent({ connect: { ca: readFileSync(`${tls}ca.pem`) } });
    try {
      const res = await request(`https://127.0.0.1:${running.port}/v1/publish/in_${id}.tls`, {
        method: "POST",
        body: '{"over":"tls"}',
        headers: { "content-type": "application/json", authorization: "Bearer s3cret" },
        dispatcher,
      });
      expect(res.statusCode).toBe(202);
      const { seq } = (await res.body.json()) as { seq: number };
      expect((await jsm.streams.getMessage(`IN_${id}`, { seq }))?.string()).toBe('{"over":"tls"}');
      await expect(fetch(`http://127.0.0.1:${running.port}/healthz`)).rejects.toThrow();
    } finally {
      await dispatcher.close();
      await running.close();
    }
  });

  it("stops start-up naming http.tls.cert_file when it cannot be read", () => {
    expect(() =>
      startHttpServer(new Hono(), 0, "127.0.0.1", {
        cert_file: "/nonexistent.pem",
        key_file: "/nonexistent-key.pem",
      }),
    ).toThrow(/http\.tls\.cert_file: cannot read \/nonexistent\.pem/);
  });

  it("stores a batch sent in chunks to POST /v1/publish", async () => {
    const { app } = await appWith({ publish_token: "s3cret" });
    const running = await startHttpServer(app, 0, "127.0.0.1");
    try {
      const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const res = await fetch(`http://127.0.0.1:${running.port}/v1/publish`, {
        method: "POST",
        body: chunks(
          `{"events":[{"subject":"in_${id}.node.batch","data":{"n":1},"id":"nb-${id}"},`,
          `{"subject":"in_${id}.node.batch","data":{"n":2}}]}`,
        ),
        duplex: "half",
        headers: { "content-type": "application/json", authorization: "Bearer s3cret", traceparent },
      } as RequestInit);
      expect(res.status).toBe(202);
      const { results } = (await res.json()) as BatchAnswer;
      expect(results).toHaveLength(2);
      for (const [i, r] of results.entries()) {
        const stored = await jsm.streams.getMessage(`IN_${id}`, { seq: r.seq as number });
        expect(stored?.json()).toEqual({ n: i + 1 });
        expect(stored?.header.get("traceparent")).toBe(traceparent);
      }
      const invalid = await fetch(`http://127.0.0.1:${running.port}/v1/publish`, {
        method: "POST",
        body: "not json",
        headers: { authorization: "Bearer s3cret" },
      });
      expect(invalid.status).toBe(400);
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
    expect(await notReady.json()).toEqual({ ready: false, reasons: ["route ship not bound"], paused: [] });
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
    for (const type of ["next", "heartbeat", "discard", "debug"])
      events.emit("consumer:status", { route: "ship", type, data: {} });
    const text = await (await app.request("/metrics")).text();
    expect(text).toContain('jetway_invocations_total{route="ship",outcome="ack",status="200"} 1');
    expect(text).toContain('jetway_invocation_duration_seconds_count{route="ship",outcome="ack"} 1');
    expect(text).toContain('jetway_dead_letters_total{route="ship"} 1');
    expect(text).toContain('jetway_in_flight{route="ship"} 3');
    expect(text).toContain('jetway_consumer_pending{route="ship"} 42');
    expect(text).toContain('jetway_batch_size_sum{route="ship"} 40');
    expect(text).toContain('jetway_consumer_notifications_total{route="ship",type="heartbeats_missed"} 1');
    for (const type of ["next", "heartbeat", "discard", "debug"])
      expect(text).not.toContain(`type="${type}"`);
  });

  it("starts each route's dead-letter and circuit counters at 0, so the first one shows as an increase", async () => {
    const metrics = new BridgeMetrics(new BridgeEvents(), { defaultMetrics: false, routes: ["ship"] });
    const text = await metrics.metrics();
    expect(text).toMatch(/^jetway_dead_letters_total\{route="ship"\} 0$/m);
    expect(text).toMatch(/^jetway_circuit_opened_total\{route="ship"\} 0$/m);
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

  it("answers 503 to a batch before publishing any of it", async () => {
    const { app } = await appWith({});
    const subject = `in_${id}.batch.down`;
    const statuses = nc.status()[Symbol.asyncIterator]();
    await server.stopProcess();
    for (;;) {
      const s = await statuses.next();
      if (s.done || s.value.type === "disconnect") break;
    }
    const res = await app.request("/v1/publish", batch([{ subject, data: 1 }]));
    expect(res.status).toBe(503);
    // No `results`: refused before any event was published.
    expect(await res.json()).toEqual({ error: { code: "nats_unavailable", message: expect.any(String) } });
    await server.restart();
    for (;;) {
      const s = await statuses.next();
      if (s.done || s.value.type === "reconnect") break;
    }
    await nc.flush();
    await expect(jsm.streams.getMessage(`IN_${id}`, { last_by_subj: subject })).resolves.toBeNull();
    expect((await app.request("/v1/publish", batch([{ subject, data: 2 }]))).status).toBe(202);
  });
});
