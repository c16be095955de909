import { type Config, parseConfig } from "../bridge/config.ts";

export interface BenchRouteOptions {
  natsUrl: string;
  functionUrl: string;
  stream: string;
  concurrency: number;
  /** Batch delivery (route `batch`), when the scenario measures it. */
  batch?: { size: number; max_wait: number };
  /** Deliver `bench.emit.v1` (the function answers one event per message, stored in the same stream). */
  events?: boolean;
  logLevel: string;
  /** `log.acks`: the level of each ack's line (the bridge's default is debug). */
  logAcks?: string;
}

export const BENCH_SUBJECT = "bench.ping.v1";
/** A ping whose handler returns one `bench.out.v1` event per message for the bridge to store. */
export const BENCH_EMIT_SUBJECT = "bench.emit.v1";
export const BENCH_OUT_SUBJECT = "bench.out.v1";
export const ROUTE = "bench";

/**
 * The bridge config of one scenario, through the same schema the bridge validates, so every default
 * (ack_wait, max_ack_pending, timeouts…) is what a real deployment gets.
 */
export function benchConfig(o: BenchRouteOptions): Config {
  return parseConfig(
    {
      nats: { servers: [o.natsUrl], name: "jetway-bench" },
      http: { port: 0, host: "127.0.0.1" },
      streams: [
        { name: o.stream, subjects: o.events ? [BENCH_EMIT_SUBJECT, BENCH_OUT_SUBJECT] : [BENCH_SUBJECT] },
      ],
      routes: [
        {
          name: ROUTE,
          stream: o.stream,
          url: o.functionUrl,
          concurrency: o.concurrency,
          ...(o.batch ? { batch: o.batch } : {}),
          ...(o.events ? { filter_subject: BENCH_EMIT_SUBJECT } : {}),
        },
      ],
      log: { level: o.logLevel, ...(o.logAcks ? { acks: o.logAcks } : {}) },
    },
    "bench",
    {},
  );
}
