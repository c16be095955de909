import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import pino from "pino";
import type { Config } from "../../bridge/config.ts";
import { NatsServer } from "../../bridge/nats-server.ts";
import { provision } from "../../bridge/provision.ts";
import { type Child, cpuSeconds, memoryBytes } from "../children.ts";
import { type BenchRouteOptions, benchConfig } from "../config.ts";
import { type LatencySummary, summarize } from "../stats.ts";

export interface ScenarioResult {
  name: string;
  status: "ok" | "pending" | "failed";
  note?: string;
  /** Messages in the measured window (after warm-up). */
  messages?: number;
  msgs_per_s?: number;
  publish_to_function?: LatencySummary;
  publish_to_ack?: LatencySummary;
  /** CPU microseconds per message in the measured window, by process. */
  cpu_us_per_msg?: { bridge?: number; nats?: number; function?: number };
  bridge_peak_rss_mb?: number;
  extra?: Record<string, number | string | boolean>;
}

/** What every scenario shares: the null function (one child for the whole run) and the run's settings. */
export interface RunContext {
  fn: Child;
  /** The null function's delivery URL. */
  fnUrl: string;
  n: number;
  backlog: number;
  concurrency: number;
  /** The bridge's log level ("info" in the shipped configs). */
  logLevel: string;
  /** The bridge's `log.acks` (debug by default: no line per ack). */
  logAcks: string;
  /** Concurrent clients POSTing orders in the pipeline scenario (each waits for its answer). */
  pipelineClients: number;
  /** Orders in the pipeline's measured window. */
  pipelineOrders: number;
  /**
   * Orders placed before the window opens. Each function handles a batch route's 50 orders in one call, so
   * a few hundred orders leave its batch code cold (interpreted, not yet optimised by V8).
   */
  pipelineWarmup: number;
  /** How long the pipeline's gateway simulator takes to answer a charge (0: at once). */
  gatewayLatencyMs: number;
  quick: boolean;
  tmp: string;
  /** Extra node flags for the consumer child (e.g. --cpu-prof). */
  execArgv: string[];
  /** `--alloc-prof`: where the bridge child writes its allocation profile of the measured window. */
  allocProfDir?: string | undefined;
}

/** A fresh nats-server with a client, for one scenario. */
export interface NatsEnv {
  server: NatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

export async function withNats<T>(run: (env: NatsEnv) => Promise<T>): Promise<T> {
  const server = await NatsServer.start();
  const nc = await connect({ servers: server.url, noAsyncTraces: true });
  try {
    return await run({ server, nc, js: jetstream(nc), jsm: await jetstreamManager(nc) });
  } finally {
    await nc.close();
    await server.stop();
  }
}

/** Writes the scenario's bridge config and provisions its stream and consumer. */
export async function prepareRoute(
  ctx: RunContext,
  env: NatsEnv,
  options: Partial<BenchRouteOptions> & { stream: string },
): Promise<{ config: Config; file: string }> {
  const config = benchConfig({
    natsUrl: env.server.url,
    functionUrl: ctx.fnUrl,
    concurrency: ctx.concurrency,
    logLevel: ctx.logLevel,
    logAcks: ctx.logAcks,
    ...options,
  });
  const file = join(ctx.tmp, `${options.stream}.json`);
  await writeFile(file, JSON.stringify(config));
  const version = env.nc.info?.version ?? "0.0.0";
  await provision(env.jsm, config, version, pino({ level: "silent" }));
  return { config, file };
}

export interface FunctionSamples {
  received: number;
  batches: number;
  latencies_ns: number[];
}

/** Takes (and resets) what the null function recorded. */
export async function functionSamples(ctx: RunContext): Promise<FunctionSamples> {
  const response = await fetch(new URL("/bench/samples", ctx.fnUrl));
  return (await response.json()) as FunctionSamples;
}

/** CPU seconds of each process now. */
export const cpuOf = (pids: Record<string, number | undefined>) =>
  Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));

/** Waits for a consumer child's measured window and returns rate and CPU per message by process. */
export async function measureWindow(
  consumer: Child,
  pids: { bridge: number; nats?: number | undefined; function: number },
): Promise<Pick<ScenarioResult, "messages" | "msgs_per_s" | "cpu_us_per_msg" | "bridge_peak_rss_mb">> {
  await consumer.waitFor("first");
  const before = cpuOf(pids);
  const done = await consumer.waitFor("done");
  const after = cpuOf(pids);
  const perMsg = (k: string) =>
    pids[k as keyof typeof pids] === undefined
      ? undefined
      : round((((after[k] ?? 0) - (before[k] ?? 0)) * 1e6) / done.count, 1);
  return {
    messages: done.count,
    msgs_per_s: Math.round(done.count / ((done.lastNs - done.firstNs) / 1e9)),
    cpu_us_per_msg: { bridge: perMsg("bridge"), nats: perMsg("nats"), function: perMsg("function") },
    bridge_peak_rss_mb: round(memoryBytes(consumer.pid, "VmHWM") / 2 ** 20, 1),
  };
}

export const round = (v: number, digits = 0): number => Math.round(v * 10 ** digits) / 10 ** digits;

export const latency = (ns: ArrayLike<number>): LatencySummary | undefined =>
  ns.length > 0 ? summarize(ns) : undefined;

/** A random stream name per scenario, like the tests use. */
export const streamName = (scenario: string): string =>
  `BENCH_${scenario.replace(/[^A-Za-z0-9]/g, "_")}_${Math.random().toString(36).slice(2, 8)}`;
