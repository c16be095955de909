import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type pino from "pino";
import { CircuitHints } from "./circuit-hints.ts";
import { type Config, durableName } from "./config.ts";
import { durableGone, RouteConsumer } from "./consumer.ts";
import { PauseWatcher } from "./control.ts";
import { BridgeEvents } from "./events.ts";
import { createHttpApp, type Readiness, startHttpServer } from "./http.ts";
import { JetStreamPublisher } from "./js-publisher.ts";
import { createLogger } from "./logger.ts";
import { BridgeMetrics } from "./metrics.ts";
import { watchStatus } from "./nats.ts";
import { Presence, presenceBucket, replicaId } from "./presence.ts";
import { serverFeatures } from "./server-features.ts";
import { once } from "./shutdown.ts";
import { connectAndProvision, jetStreamNotReady, recreateConsumer, untilReady } from "./startup.ts";
import { startTelemetry, type TelemetryOptions } from "./telemetry.ts";
import { TurnBatch } from "./turn-batch.ts";

export interface BridgeOptions {
  logger?: pino.Logger;
  env?: NodeJS.ProcessEnv;
  /** Test hook: SDK settings for telemetry (e.g. an in-memory span processor). */
  telemetrySdk?: TelemetryOptions["sdk"];
}

export interface RunningBridge {
  config: Config;
  nc: NatsConnection;
  events: BridgeEvents;
  /** The HTTP port actually bound (config may say 0). */
  port: number;
  readiness(): Readiness;
  /** Graceful stop: readyz 503, stop pulling, finish in-flight within the grace period, drain. Idempotent. */
  shutdown(): Promise<void>;
}

const RESTART_DELAY_MS = 1_000;

/** Wires the bridge: telemetry → NATS → provision → consumers + HTTP. */
export async function startBridge(config: Config, options: BridgeOptions = {}): Promise<RunningBridge> {
  const logger = options.logger ?? createLogger({ level: config.log.level });
  const events = new BridgeEvents();
  const telemetry = await startTelemetry({
    config: config.telemetry,
    events,
    logger,
    ...(options.env ? { env: options.env } : {}),
    ...(options.telemetrySdk ? { sdk: options.telemetrySdk } : {}),
  });
  const metrics = new BridgeMetrics(events, { routes: config.routes.map((r) => r.name) });
  const { nc, version, jsm, control, presence: presenceKv } = await connectAndProvision(config, logger);
  const connection = watchStatus(nc, logger);
  const js = jetstream(nc);
  const store = new JetStreamPublisher(nc, js);

  const features = serverFeatures(version);
  let shuttingDown = false;
  const consumers = config.routes.map(
    (route) =>
      new RouteConsumer({
        js,
        store,
        route,
        deadLetter: config.dead_letter,
        events,
        logger,
        features,
        ackLogLevel: config.log.acks,
      }),
  );
  // Operator pauses apply before any consumer binds: a replica started during a pause starts paused.
  const routes = new Map(consumers.map((c, i) => [config.routes[i]?.name ?? "", c]));
  const pauses = new PauseWatcher(control, routes, logger, config.control.poll_interval);
  // The first reads may meet a JetStream still recovering (a server just restarted): waited out like start-up's.
  // A step that fails for good fails start-up, and takes the connection (with its watches) down with it.
  const waitOut = (step: string, run: () => Promise<void>) =>
    untilReady(step, run, {
      deadline: performance.now() + config.nats.startup_wait,
      logger,
      retryable: jetStreamNotReady,
    }).catch(async (error: unknown) => {
      await nc.close();
      throw error;
    });
  await waitOut("reading operator pauses", () => pauses.start());
  // Every replica says what it has of each route; those of a rate-limited route split its limit, and a
  // new one counts the others before it sends.
  const rateLimited = new Set(config.routes.filter((r) => r.rate_limit).map((r) => r.name));
  const id = replicaId();
  const presence =
    presenceKv &&
    new Presence({
      kv: presenceKv,
      jsm,
      bucket: presenceBucket(config.control),
      routes,
      rateLimited,
      log: logger,
      id,
    });
  if (presence) await waitOut("announcing this replica to the others", () => presence.start());
  // A circuit opened here by failures in a row is news to the other replicas: they open theirs sooner.
  const hints = new CircuitHints(control, routes, id, logger);
  events.on("circuit:open", ({ route, reason, cause }) => {
    if (cause === "failures") hints.announce(route, reason);
  });
  await waitOut("following other replicas' circuits", () => hints.start());
  /** Routes whose deleted durable is being recreated: one loop each. */
  const recreating = new Set<string>();
  events.on("consumer:error", ({ route, error }) => logger.warn({ route, err: error }, "consumer error"));
  events.on("consumer:bound", ({ route }) => logger.info({ route }, "consumer bound"));
  // Heartbeats missed, consumer deleted, …: notifications, logged from the side, never thrown. A durable
  // deleted under a running bridge is recreated, and the route's consumer rebinds to it.
  events.on("consumer:status", ({ route, type }) => {
    logger.debug({ route, type }, "consumer status");
    const routeConfig = config.routes.find((r) => r.name === route);
    if (!durableGone(type) || !routeConfig || shuttingDown) return;
    if (recreating.has(route)) return;
    logger.warn({ route }, "consumer was deleted, recreating it");
    recreating.add(route);
    void recreateConsumer(jsm, routeConfig, version, logger, () => shuttingDown).finally(() =>
      recreating.delete(route),
    );
  });

  const readiness = (): Readiness => {
    const reasons: string[] = [];
    if (shuttingDown) reasons.push("shutting down");
    if (!connection.connected) reasons.push("nats disconnected");
    const paused: string[] = [];
    const pausedBy: Record<string, string> = {};
    for (const [name, c] of routes) {
      if (!c.bound) reasons.push(`route ${name} not bound`);
      if (c.paused) paused.push(name);
      const reason = c.pausedBy;
      if (reason !== undefined) pausedBy[name] = reason;
    }
    return { ready: reasons.length === 0, reasons, paused, paused_by: pausedBy };
  };
  /** One value per route, read from its consumer. */
  const perRoute = <T>(read: (c: RouteConsumer) => T) =>
    Object.fromEntries([...routes].map(([name, c]) => [name, read(c)]));
  metrics.setSources({
    inFlight: () => perRoute((c) => c.inFlight),
    waiting: () => perRoute((c) => c.queued),
    rateLimits: () =>
      Object.fromEntries([...rateLimited].map((name) => [name, routes.get(name)?.ratePerSecond ?? 0])),
    circuits: () =>
      perRoute((c) => ({
        paused: c.pausedByBreaker,
        pausedByOperator: c.pausedBy !== undefined,
        held: c.heldCount,
      })),
    pending: async () => {
      // Without NATS a consumer-info call would hang a scrape for the request timeout; metrics keep the last value.
      if (!connection.connected) throw new Error("nats disconnected");
      const entries = await Promise.all(
        config.routes.map(async (r) => {
          const info = await jsm.consumers.info(r.stream, durableName(r));
          return [r.name, info.num_pending] as const;
        }),
      );
      return Object.fromEntries(entries);
    },
  });

  const app = createHttpApp({
    ingress: {
      nc,
      store,
      http: config.http,
      deadLetterPrefix: config.dead_letter.subject_prefix,
      connected: () => connection.connected,
      logger,
      publishes: new TurnBatch(),
      ...(telemetry.startPublish ? { startPublish: telemetry.startPublish } : {}),
    },
    metrics,
    readiness,
    logger,
  });
  const http = await startHttpServer(app, config.http.port, config.http.host, config.http.tls);
  logger.info(
    { port: http.port, host: config.http.host, tls: config.http.tls !== undefined },
    "http listening",
  );

  // A consumer that cannot bind yet (e.g. NATS blipped between provision and now) keeps trying; readyz says so.
  const bindAll = consumers.map(async (consumer, i) => {
    while (!shuttingDown) {
      try {
        await consumer.start();
        return;
      } catch (error) {
        logger.warn({ route: config.routes[i]?.name, err: error }, "binding consumer failed, retrying");
        await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
      }
    }
  });
  await Promise.race([Promise.all(bindAll), new Promise((r) => setTimeout(r, 5_000).unref())]);

  const shutdown = once(async () => {
    shuttingDown = true;
    pauses.stop();
    hints.stop();
    // Gone from the count first: the other replicas take up this one's share while it finishes.
    await presence?.stop();
    await Promise.all(consumers.map((c) => c.stop(config.shutdown.grace_period)));
    await http.close();
    await nc.drain().catch((error: unknown) => logger.warn({ err: error }, "nats drain failed"));
    await telemetry.shutdown();
  });

  return { config, nc, events, port: http.port, readiness, shutdown };
}
