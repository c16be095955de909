import { describe, expect, it } from "vitest";
import { BridgeEvents } from "./events.ts";
import { createLogger } from "./logger.ts";
import { startTelemetry } from "./telemetry.ts";
import { collectSpans } from "./testing/spans.ts";

const logger = createLogger({ level: "silent" });
const config = { enabled: true, service_name: "jetway-test" };

describe("telemetry", () => {
  it("stays off without config or OTEL_EXPORTER_OTLP_ENDPOINT", async () => {
    const t = await startTelemetry({
      config: { ...config, enabled: false },
      events: new BridgeEvents(),
      logger,
      env: {},
    });
    expect(t.enabled).toBe(false);
    await t.shutdown();
  });

  it("records one span per invocation, child of the message's traceparent", async () => {
    // Spans export asynchronously; read them after shutdown has flushed.
    const { finished, spanProcessors } = collectSpans();
    const events = new BridgeEvents();
    const t = await startTelemetry({
      config,
      events,
      logger,
      env: {},
      sdk: { spanProcessors },
    });
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const delivery = {
      route: "ship",
      subject: "orders.created",
      stream: "ORDERS",
      seq: 7,
      delivery: 2,
      id: "abc",
      traceparent: `00-${traceId}-b7ad6b7169203331-01`,
      startedAt: 0,
    };
    events.emit("invoke:start", delivery);
    events.emit("invoke:outcome", {
      delivery,
      outcome: "retry",
      status: 503,
      durationMs: 5,
      delayMs: 1000,
      emitted: 0,
    });
    await t.shutdown();
    const spans = finished;
    expect(spans).toHaveLength(1);
    const span = spans[0];
    expect(span?.spanContext().traceId).toBe(traceId);
    expect(span?.parentSpanContext?.spanId).toBe("b7ad6b7169203331");
    // What goes on to the function and the events it emits is the span's own context.
    expect(delivery.traceparent).toBe(`00-${traceId}-${span?.spanContext().spanId}-01`);
    expect(span?.attributes).toMatchObject({
      "jetway.route": "ship",
      "jetway.outcome": "retry",
      "http.response.status_code": 503,
    });
  });
});
