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

/** W3C trace context as HTTP and NATS headers carry it. */
export interface TraceContext {
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

/** A publish being traced: the context the published messages carry, and how to end its span. */
export interface PublishSpan {
  trace: TraceContext;
  end(error?: string): void;
}

export interface Telemetry {
  readonly enabled: boolean;
  /**
   * With tracing on: a PRODUCER span for an ingress publish, child of the caller's context; the messages
   * published carry the span's context, so their deliveries are its children.
   */
  startPublish?(name: string, caller: TraceContext): PublishSpan;
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
    // Pass the span's own context on, so the function's work and the events it emits are its children.
    const next: Record<string, string> = {};
    propagation.inject(trace.setSpan(context.active(), span), next);
    if (next.traceparent) d.traceparent = next.traceparent;
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

  const startPublish = (name: string, caller: TraceContext): PublishSpan => {
    const carrier: Record<string, string> = {};
    if (caller.traceparent) carrier.traceparent = caller.traceparent;
    if (caller.tracestate) carrier.tracestate = caller.tracestate;
    const parent = propagation.extract(context.active(), carrier, carrierGetter);
    const span = tracer.startSpan(
      `${name} publish`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "publish",
          "messaging.destination.name": name,
        },
      },
      parent,
    );
    const out: Record<string, string> = {};
    propagation.inject(trace.setSpan(parent, span), out);
    return {
      trace: { traceparent: out.traceparent, tracestate: out.tracestate ?? caller.tracestate },
      end(error) {
        if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
        span.end();
      },
    };
  };

  return {
    enabled: true,
    startPublish,
    async shutdown() {
      for (const span of open.values()) span.end();
      open.clear();
      await node
        .shutdown()
        .catch((error: unknown) => logger.warn({ err: error }, "telemetry shutdown failed"));
    },
  };
}
