import { type Config, parseConfig } from "../bridge/config.ts";

export interface BenchRouteOptions {
  natsUrl: string;
  functionUrl: string;
  stream: string;
  concurrency: number;
  /** Batch delivery (route `batch`), when the scenario measures it. */
  batch?: { size: number; max_wait: number };
  logLevel: string;
}

export const BENCH_SUBJECT = "bench.ping.v1";
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
      streams: [{ name: o.stream, subjects: [BENCH_SUBJECT] }],
      routes: [
        {
          name: ROUTE,
          stream: o.stream,
          url: o.functionUrl,
          concurrency: o.concurrency,
          ...(o.batch ? { batch: o.batch } : {}),
        },
      ],
      log: { level: o.logLevel },
    },
    "bench",
    {},
  );
}
