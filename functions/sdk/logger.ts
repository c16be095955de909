import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";
import type { EventMeta } from "./types.ts";

export type { Logger } from "pino";

const LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

export interface FunctionLoggerOptions {
  /** Default "info"; a request may lower or raise it with JETWAY_LOG_LEVEL in its env. */
  level?: string;
  /** Where JSON lines go on Node (default stdout); tests pass a collecting stream. */
  destination?: DestinationStream;
}

/**
 * One pino logger per function, JSON lines carrying `fn`. Bundlers for Workers pick pino's browser build,
 * which ignores streams: `browser.write` makes it print the same JSON lines through the console, which is
 * what Workers Logs and CloudWatch collect.
 */
export function createFunctionLogger(fn: string, options: FunctionLoggerOptions = {}): Logger {
  const config: LoggerOptions = {
    level: options.level ?? "info",
    // pino's browser build ignores `base`, so `fn` is bound as a child instead: same lines everywhere.
    base: null,
    timestamp: pino.stdTimeFunctions.isoTime,
    browser: {
      asObject: true,
      // The console is the log sink on Workers; this is pino's transport, not a stray debug print.
      write: (record: object) => console.log(JSON.stringify(record)),
    },
  };
  const root = options.destination ? pino(config, options.destination) : pino(config);
  return root.child({ fn });
}

/** `00-<trace id>-<span id>-<flags>` → the trace id, so log lines join up with traces. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const match = traceparent
    ? /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent)
    : null;
  // An all-zero trace id is invalid (W3C Trace Context): no trace to look up.
  return match?.[1] === ALL_ZERO ? undefined : match?.[1];
}

const ALL_ZERO = "0".repeat(32);

/** A valid level name from the request's env, or undefined to keep the function's level. */
export function levelFrom(value: string | undefined): string | undefined {
  return value && LEVELS.has(value) ? value : undefined;
}

/** The per-message child: every line a handler writes names the message it was about. */
export function messageLogger(base: Logger, meta: EventMeta, level?: string): Logger {
  const bindings = {
    msg_id: meta.id,
    subject: meta.subject,
    stream: meta.stream,
    seq: meta.seq,
    delivery: meta.delivery,
    trace_id: traceIdOf(meta.traceparent),
  };
  return childAt(base, bindings, level);
}

/** A child logger, at `level` when one is given (JETWAY_LOG_LEVEL), else at its parent's. */
export function childAt(base: Logger, bindings: pino.Bindings, level?: string): Logger {
  return level ? base.child(bindings, { level }) : base.child(bindings);
}
