import { tracing } from "@opentelemetry/sdk-node";

/** Span processors for a test's telemetry that keep every finished span in `finished`, in end order. */
export function collectSpans(): {
  finished: tracing.ReadableSpan[];
  spanProcessors: tracing.SpanProcessor[];
} {
  const finished: tracing.ReadableSpan[] = [];
  const exporter: tracing.SpanExporter = {
    export: (spans, done) => {
      finished.push(...spans);
      done({ code: 0 });
    },
    shutdown: async () => {},
  };
  return { finished, spanProcessors: [new tracing.SimpleSpanProcessor(exporter)] };
}
