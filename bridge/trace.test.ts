import { SpanKind } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { type RunningBridge, startBridge } from "./main.ts";
import { NatsServer } from "./nats-server.ts";
import { HttpFunction, waitFor } from "./testing/http-function.ts";
import { collectSpans } from "./testing/spans.ts";

/**
 * One trace across HTTP and NATS: a traced request publishes through the ingress (a producer span), the
 * bridge delivers it (a consumer span, its child), the function emits an event, the bridge delivers that
 * one too (a span, child of the first delivery's), and each function call carries the context of the
 * span that made it.
 */
const { finished, spanProcessors } = collectSpans();
const id = Math.random().toString(36).slice(2, 7);
let server: NatsServer;
let fn: HttpFunction;
let bridge: RunningBridge;

beforeAll(async () => {
  server = await NatsServer.start();
  // The first hop answers with one event to emit; the second just acks.
  fn = await HttpFunction.start((request) =>
    request.headers["ce-type"] === `t_${id}.placed`
      ? { status: 200, body: { events: [{ subject: `t_${id}.charged`, data: { ok: true } }] } }
      : { status: 200 },
  );
  const config = parseConfig(
    {
      nats: { servers: [server.url] },
      http: { port: 0, host: "127.0.0.1" },
      streams: [{ name: `T_${id}`, subjects: [`t_${id}.>`] }],
      dead_letter: { stream: `DLQ_${id}`, subject_prefix: `dlq_${id}` },
      routes: [
        { name: "first", stream: `T_${id}`, filter_subject: `t_${id}.placed`, url: fn.url },
        { name: "second", stream: `T_${id}`, filter_subject: `t_${id}.charged`, url: fn.url },
      ],
      telemetry: { enabled: true, service_name: "jetway-trace-test" },
    },
    "test",
    {},
  );
  bridge = await startBridge(config, {
    logger: createLogger({ level: "silent" }),
    telemetrySdk: { spanProcessors },
  });
});

afterAll(async () => {
  await bridge?.shutdown();
  await fn?.close();
  await server?.stop();
});

const parentOf = (traceparent: unknown) => String(traceparent).split("-")[2];

describe("tracing across the bridge", () => {
  it("chains the ingress request, both deliveries and both function calls into one trace", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const res = await fetch(`http://127.0.0.1:${bridge.port}/v1/publish/t_${id}.placed`, {
      method: "POST",
      body: JSON.stringify({ order: 1 }),
      headers: { "content-type": "application/json", traceparent: `00-${traceId}-${callerSpan}-01` },
    });
    expect(res.status).toBe(202);
    await waitFor("both deliveries", () => fn.requests.length >= 2);
    await waitFor("three spans", () => finished.length >= 3);

    const publish = finished.find((s) => s.name === `t_${id}.placed publish`);
    const first = finished.find((s) => s.attributes["jetway.route"] === "first");
    const second = finished.find((s) => s.attributes["jetway.route"] === "second");
    for (const span of [publish, first, second]) expect(span?.spanContext().traceId).toBe(traceId);
    // caller → the ingress's producer span → the first delivery.
    expect(publish?.kind).toBe(SpanKind.PRODUCER);
    expect(publish?.parentSpanContext?.spanId).toBe(callerSpan);
    expect(first?.parentSpanContext?.spanId).toBe(publish?.spanContext().spanId);
    // The emitted event carried the first delivery's span: the second delivery is its child.
    expect(second?.parentSpanContext?.spanId).toBe(first?.spanContext().spanId);

    const [toFirst, toSecond] = fn.requests;
    expect(String(toFirst?.headers.traceparent)).toContain(traceId);
    expect(parentOf(toFirst?.headers.traceparent)).toBe(first?.spanContext().spanId);
    expect(parentOf(toSecond?.headers.traceparent)).toBe(second?.spanContext().spanId);
  });

  it("gives a batch publish one producer span, parent of each event's delivery", async () => {
    const traceId = "0123456789abcdef0123456789abcdef";
    const before = finished.length;
    const res = await fetch(`http://127.0.0.1:${bridge.port}/v1/publish`, {
      method: "POST",
      body: JSON.stringify({
        events: [
          { subject: `t_${id}.charged`, data: { n: 1 } },
          { subject: `t_${id}.charged`, data: { n: 2 } },
        ],
      }),
      headers: { "content-type": "application/json", traceparent: `00-${traceId}-1111111111111111-01` },
    });
    expect(res.status).toBe(202);
    await waitFor("a publish span and two delivery spans", () => finished.length >= before + 3);
    const spans = finished.slice(before).filter((s) => s.spanContext().traceId === traceId);
    const publish = spans.find((s) => s.name === "events publish");
    const deliveries = spans.filter((s) => s.attributes["jetway.route"] === "second");
    expect(publish?.parentSpanContext?.spanId).toBe("1111111111111111");
    expect(deliveries).toHaveLength(2);
    for (const d of deliveries) expect(d.parentSpanContext?.spanId).toBe(publish?.spanContext().spanId);
  });
});
