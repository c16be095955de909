import { randomBytes } from "node:crypto";
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import pino from "pino";
import { afterAll, afterEach, beforeAll } from "vitest";
import { type Config, parseConfig, type RouteConfig } from "../config.ts";
import { RouteConsumer } from "../consumer.ts";
import { BridgeEvents, type OutcomeEvent } from "../events.ts";
import { JetStreamPublisher } from "../js-publisher.ts";
import { NatsServer } from "../nats-server.ts";
import { provision } from "../provision.ts";
import { serverFeatures } from "../server-features.ts";

/** A nats-server of our own plus a client connection that reconnects quickly (restart tests). */
export interface Harness {
  server: NatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** How the bridge stores events and dead letters (main.ts wires the same). */
  store: JetStreamPublisher;
  close(): Promise<void>;
}

/**
 * One harness for a test file (started before its first test, closed after its last) and a list of
 * cleanups run after each test, last registered first.
 */
export function useHarness(): { h: Harness; cleanups: (() => Promise<void>)[] } {
  const h = {} as Harness;
  const cleanups: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    Object.assign(h, await startHarness());
  });
  afterAll(() => h.close());
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return { h, cleanups };
}

export async function startHarness(): Promise<Harness> {
  const server = await NatsServer.start();
  const nc = await connect({
    servers: server.url,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
    noAsyncTraces: true,
  });
  const js = jetstream(nc);
  return {
    server,
    nc,
    js,
    jsm: await jetstreamManager(nc),
    store: new JetStreamPublisher(nc, js),
    async close() {
      await nc.close();
      await server.stop();
    },
  };
}

/** One route wired end to end: its own stream, DLQ stream, durable consumer and RouteConsumer. */
export interface RouteFixture {
  config: Config;
  route: RouteConfig;
  consumer: RouteConsumer;
  /**
   * Another RouteConsumer on the same durable and events (a restarted bridge, another replica), with
   * `overrides` on its route and a NATS client of its own if given.
   */
  newConsumer(overrides?: Partial<RouteConfig>, js?: JetStreamClient): RouteConsumer;
  events: BridgeEvents;
  outcomes: OutcomeEvent[];
  /** A subject of the route's stream. */
  subject: string;
  /** Prefix of subjects in the extra "out" stream (`<prefix>.x`). */
  outPrefix: string;
  outStream: string;
  dlqStream: string;
  dlq(): Promise<StoredMsg[]>;
  stored(stream: string): Promise<StoredMsg[]>;
}

const silent = pino({ level: "silent" });

/** Provisions exactly what the bridge's provisioning would and binds a RouteConsumer (not started). */
export async function routeFixture(
  h: Harness,
  url: string,
  route: Record<string, unknown> = {},
): Promise<RouteFixture> {
  const id = randomBytes(4).toString("hex");
  const stream = `IN_${id}`;
  const outStream = `OUT_${id}`;
  const dlqStream = `DLQ_${id}`;
  const config = parseConfig(
    {
      streams: [
        { name: stream, subjects: [`in_${id}.>`] },
        { name: outStream, subjects: [`out_${id}.>`] },
      ],
      dead_letter: { stream: dlqStream, subject_prefix: `dlq_${id}` },
      routes: [{ name: `route_${id}`, stream, url, ...route }],
    },
    "test",
    {},
  );
  const routeConfig = config.routes[0] as RouteConfig;
  await provision(h.jsm, config, h.nc.info?.version ?? "2.9.0", silent);
  const events = new BridgeEvents();
  const outcomes: OutcomeEvent[] = [];
  events.on("invoke:outcome", (event) => outcomes.push(event));
  const newConsumer = (overrides: Partial<RouteConfig> = {}, js = h.js) =>
    new RouteConsumer({
      js,
      store: h.store,
      route: { ...routeConfig, ...overrides },
      deadLetter: config.dead_letter,
      events,
      logger: silent,
      features: serverFeatures(h.nc.info?.version ?? "2.9.0"),
    });
  const consumer = newConsumer();
  const stored = async (name: string): Promise<StoredMsg[]> => {
    const info = await h.jsm.streams.info(name);
    const out: StoredMsg[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const msg = await h.jsm.streams.getMessage(name, { seq });
      if (msg) out.push(msg);
    }
    return out;
  };
  return {
    config,
    route: routeConfig,
    consumer,
    newConsumer,
    events,
    outcomes,
    subject: `in_${id}.test`,
    outPrefix: `out_${id}`,
    outStream,
    dlqStream,
    dlq: () => stored(dlqStream),
    stored,
  };
}
