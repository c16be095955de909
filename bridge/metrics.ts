import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { NOTABLE_STATUS } from "./consumer-status.ts";
import type { BridgeEvents } from "./events.ts";
import { OutcomeTally } from "./outcome-tally.ts";

/** Live numbers the metrics read at scrape time instead of being pushed from the core loop. */
export interface MetricSources {
  /** In-flight invocations per route (RouteConsumer.inFlight). */
  inFlight?: () => Record<string, number>;
  /** Messages received and not sent yet per route (RouteConsumer.queued). */
  waiting?: () => Record<string, number>;
  /** num_pending per route from consumer info; cached by the metrics for `pendingCacheMs`. */
  pending?: () => Promise<Record<string, number>>;
  /** Messages per second this replica may send, per route with a `rate_limit` (its share of the limit). */
  rateLimits?: () => Record<string, number>;
  /** Per route: paused by its circuit breaker, by an operator, and how many messages it holds meanwhile. */
  circuits?: () => Record<string, CircuitSource>;
}

export interface CircuitSource {
  paused: boolean;
  pausedByOperator?: boolean;
  held: number;
}

export interface BridgeMetricsOptions {
  /** Milliseconds a consumer-info answer is reused, so a fast scraper does not hammer JetStream. */
  pendingCacheMs?: number;
  /** Process metrics (cpu, memory, event loop); on by default. */
  defaultMetrics?: boolean;
  /**
   * The routes whose counters start at 0: a series that first appears at 1 reads as no increase, so the
   * first dead letter or circuit opening after a (re)start would not alert.
   */
  routes?: readonly string[];
}

/** The bridge's Prometheus registry; fed by lifecycle events, never called from the consume loop. */
export class BridgeMetrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;
  private sources: MetricSources = {};
  private pendingCache: { at: number; values: Record<string, number> } | undefined;
  private readonly pendingCacheMs: number;
  private readonly ingressTotal: Counter<"status">;

  constructor(events: BridgeEvents, options: BridgeMetricsOptions = {}) {
    this.pendingCacheMs = options.pendingCacheMs ?? 5_000;
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    // jetway_invocations_total and jetway_invocation_duration_seconds: one of each per settled message.
    const outcomes = new OutcomeTally();
    outcomes.register(this.registry);
    const deadLetters = new Counter({
      name: "jetway_dead_letters_total",
      help: "Messages moved to the dead-letter stream.",
      labelNames: ["route"] as const,
      registers,
    });
    this.ingressTotal = new Counter({
      name: "jetway_ingress_publish_total",
      help: "POST /v1/publish requests by response status.",
      labelNames: ["status"] as const,
      registers,
    });
    const self = this;
    /** A gauge with one value per route, read from a source at scrape time. */
    const routeGauge = (name: string, help: string, read: () => Record<string, number>) =>
      new Gauge({
        name,
        help,
        labelNames: ["route"] as const,
        registers,
        collect() {
          this.reset();
          for (const [route, n] of Object.entries(read())) this.set({ route }, n);
        },
      });
    /** One field of every route's circuit, as a number. */
    const circuitField = (field: (c: CircuitSource) => number) => () =>
      Object.fromEntries(Object.entries(self.sources.circuits?.() ?? {}).map(([r, c]) => [r, field(c)]));

    routeGauge("jetway_in_flight", "Invocations currently in flight.", () => self.sources.inFlight?.() ?? {});
    routeGauge(
      "jetway_route_waiting",
      "Messages the replica has received and not sent yet: waiting for a free slot, the route's rate_limit or their batch.",
      () => self.sources.waiting?.() ?? {},
    );
    routeGauge(
      "jetway_route_rate_limit",
      "Messages per second this replica may send on a route with a rate_limit: the limit over the replicas sharing it.",
      () => self.sources.rateLimits?.() ?? {},
    );
    new Gauge({
      name: "jetway_consumer_pending",
      help: "Messages in the stream not yet delivered to the route's consumer (num_pending).",
      labelNames: ["route"] as const,
      registers,
      async collect() {
        this.reset();
        for (const [route, n] of Object.entries(await self.pending())) this.set({ route }, n);
      },
    });

    routeGauge(
      "jetway_route_paused",
      "1 while the route's circuit breaker has paused it (its function looks down), else 0.",
      circuitField((c) => +c.paused),
    );
    routeGauge(
      "jetway_route_paused_by_operator",
      "1 while an operator has paused the route (jetway pause), else 0.",
      circuitField((c) => +(c.pausedByOperator ?? false)),
    );
    routeGauge(
      "jetway_route_held",
      "Messages a paused route holds for its probe or its resume (kept alive, not pending on the server).",
      circuitField((c) => c.held),
    );
    const circuitOpened = new Counter({
      name: "jetway_circuit_opened_total",
      help: "Times a route's circuit breaker opened (after failures in a row, or a failed probe).",
      labelNames: ["route"] as const,
      registers,
    });
    events.on("circuit:open", ({ route }) => circuitOpened.inc({ route }));
    for (const route of options.routes ?? []) {
      deadLetters.inc({ route }, 0);
      circuitOpened.inc({ route }, 0);
    }

    events.on("invoke:outcome", (e) =>
      outcomes.add(e.delivery.route, e.outcome, e.status, e.durationMs / 1_000),
    );
    events.on("dead_letter:published", (delivery) => deadLetters.inc({ route: delivery.route }));

    const batchSize = new Histogram({
      name: "jetway_batch_size",
      help: "Messages per batch delivery (batch routes only).",
      labelNames: ["route"] as const,
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers,
    });
    events.on("batch:delivered", (b) => batchSize.observe({ route: b.route }, b.size));
    const notifications = new Counter({
      name: "jetway_consumer_notifications_total",
      help: "Consumer notifications (heartbeats missed, consumer deleted, …) by route and type.",
      labelNames: ["route", "type"] as const,
      registers,
    });
    events.on("consumer:status", ({ route, type }) => {
      // Only those worth alerting on: pulls' bookkeeping (next, heartbeat, discard, debug) is routine.
      if (NOTABLE_STATUS.has(type)) notifications.inc({ route, type });
    });
  }

  /** Wires the scrape-time sources once the consumers exist. */
  setSources(sources: MetricSources): void {
    this.sources = sources;
  }

  /** Counts one ingress publish answer. */
  ingress(status: number): void {
    this.ingressTotal.inc({ status: String(status) });
  }

  /** The exposition text for GET /metrics. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  private async pending(): Promise<Record<string, number>> {
    const source = this.sources.pending;
    if (!source) return {};
    const now = Date.now();
    if (this.pendingCache && now - this.pendingCache.at < this.pendingCacheMs)
      return this.pendingCache.values;
    try {
      const values = await source();
      this.pendingCache = { at: now, values };
      return values;
    } catch {
      // NATS unreachable during a scrape: show the last known numbers rather than failing /metrics.
      return this.pendingCache?.values ?? {};
    }
  }
}
