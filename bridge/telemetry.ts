import {
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import type { NodeSDKConfiguration } from "@opentelemetry/sdk-node";
import type pino from "pino";
import type { Config } from "./config.ts";
import type { BridgeEvents, Delivery } from "./events.ts";

export interface Telemetry {
  readonly enabled: boolean;
  /** Flushes and stops the SDK; ends any span still open. */
  shutdown(): Promise<void>;
}

export interface TelemetryOptions {
  config: Config["telemetry"];
  events: BridgeEvents;
  logger: pino.Logger;
  env?: NodeJS.ProcessEnv;
  /** Extra SDK settings (tests pass an in-memory span processor). */
  sdk?: Partial<NodeSDKConfiguration>;
}

const carrierGetter: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

const keyOf = (d: Delivery) => `${d.route}\u0000${d.stream}\u0000${d.seq}\u0000${d.delivery}`;

/**
 * Starts OpenTelemetry only when asked (config.telemetry.enabled or OTEL_EXPORTER_OTLP_ENDPOINT), and then
 * opens a consumer span per invocation from the lifecycle events, parented on the message's traceparent.
 */
export async function startTelemetry({
  config,
  events,
  logger,
  env = process.env,
  sdk,
}: TelemetryOptions): Promise<Telemetry> {
  if (!config.enabled && !env.OTEL_EXPORTER_OTLP_ENDPOINT && !sdk) {
    return { enabled: false, shutdown: async () => {} };
  }
  // Loaded only when tracing is on: the SDK is heavy and most CLI runs never need it.
  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  const node = new NodeSDK({ serviceName: config.service_name, instrumentations: [], ...sdk });
  node.start();
  const tracer = trace.getTracer("jetway-bridge");
  const open = new Map<string, Span>();

  const onStart = (d: Delivery) => {
    const carrier: Record<string, string> = d.traceparent ? { traceparent: d.traceparent } : {};
    const parent = propagation.extract(context.active(), carrier, carrierGetter);
    const span = tracer.startSpan(
      `${d.route} process`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "process",
          "messaging.destination.name": d.subject,
          "messaging.message.id": d.id,
          "jetway.route": d.route,
          "jetway.stream": d.stream,
          "jetway.stream_seq": d.seq,
          "jetway.delivery": d.delivery,
        },
      },
      parent,
    );
    open.set(keyOf(d), span);
  };
  events.on("invoke:start", onStart);
  events.on("invoke:outcome", (e) => {
    const key = keyOf(e.delivery);
    const span = open.get(key);
    if (!span) return;
    open.delete(key);
    span.setAttribute("jetway.outcome", e.outcome);
    if (e.status !== undefined) span.setAttribute("http.response.status_code", e.status);
    if (e.delayMs !== undefined) span.setAttribute("jetway.retry_delay_ms", e.delayMs);
    if (e.outcome !== "ack") span.setStatus({ code: SpanStatusCode.ERROR, message: e.reason ?? e.outcome });
    span.end();
  });
  logger.info({ service: config.service_name }, "opentelemetry tracing started");

  return {
    enabled: true,
    async shutdown() {
      for (const span of open.values()) span.end();
      open.clear();
      await node
        .shutdown()
        .catch((error: unknown) => logger.warn({ err: error }, "telemetry shutdown failed"));
    },
  };
}
