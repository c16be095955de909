import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type pino from "pino";
import { AckBatcher } from "./ack-batcher.ts";
import { AckTicker, type Tickable } from "./ack-ticker.ts";
import { BatchDispatcher } from "./batch-consumer.ts";
import { Circuit, NO_BREAKER, type OpenCause } from "./circuit.ts";
import { type Config, durableName, maxAckPending, type RouteConfig } from "./config.ts";
import { NOTABLE_STATUS } from "./consumer-status.ts";
import type { BridgeEvents, Delivery } from "./events.ts";
import { Fifo } from "./fifo.ts";
import { IdleGate } from "./idle-gate.ts";
import { type Invocation, Invoker } from "./invoker.ts";
import type { MessageStore } from "./js-publisher.ts";
import {
  backoffDelay,
  beyondMaxDeliver,
  decideOutcome,
  type Outcome,
  retryableFailure,
  retryDelay,
} from "./outcome.ts";
import type { RouteReport } from "./presence.ts";
import { RatePacer } from "./rate-limit.ts";
import type { ServerFeatures } from "./server-features.ts";
import { deliveryOf, Settler } from "./settle.ts";

export interface RouteConsumerOptions {
  js: JetStreamClient;
  /** Where events and dead letters are stored: the bridge's one JetStreamPublisher. */
  store: MessageStore;
  route: RouteConfig;
  deadLetter: Config["dead_letter"];
  events: BridgeEvents;
  logger: pino.Logger;
  features: ServerFeatures;
  /** `log.acks`: the level of the line an acked message writes on a single-delivery route. */
  ackLogLevel?: "debug" | "info";
}

/** Delay of the nak that hands unfinished messages back at shutdown (never 0: 2.9 would resend at once). */
const SHUTDOWN_NAK_MS = 100;
const REBIND_DELAY_MS = 1_000;
const PULL_EXPIRES_MS = 5_000;
/**
 * The durable is gone: deleted under a pending pull (`consumer_deleted`), or found missing when no pull was
 * pending at the time (`consumer_not_found`, a few seconds later, after the pull's heartbeats stop).
 */
const DURABLE_GONE = new Set(["consumer_deleted", "consumer_not_found"]);
export const durableGone = (statusType: string): boolean => DURABLE_GONE.has(statusType);

/**
 * One message's record, from when it is sent (on a rate-limited route, or once held: from when it arrived)
 * to its settlement; the ack ticker keeps it alive, stop() abandons it.
 */
class InFlight implements Tickable {
  msg: JsMsg;
  touchedAt: number;
  abandoned = false;
  /** Failed while the circuit was open: kept (and ticked) for a probe instead of settled. */
  held = false;
  constructor(msg: JsMsg, now: number) {
    this.msg = msg;
    this.touchedAt = now;
  }
}

/** A queued message's record: the one it has, or a new one as it goes. */
const recordOf = (item: InFlight | JsMsg): InFlight =>
  item instanceof InFlight ? item : new InFlight(item, performance.now());

/**
 * Pulls one route's durable consumer and runs every message through invoke → decide → settle, with at
 * most `route.concurrency` invocations in flight and, with `rate_limit`, no faster than it allows; the
 * rest wait, kept alive, in an O(1) queue (bounded by the consumer's max_ack_pending on the server). A
 * route with `batch` hands every message to a BatchDispatcher instead (batch-consumer.ts), where
 * `concurrency` counts batches in flight.
 */
export class RouteConsumer {
  private readonly o: RouteConsumerOptions;
  private readonly route: RouteConfig;
  private readonly log: pino.Logger;
  private readonly invoker: Invoker;
  private readonly ticker: AckTicker;
  private readonly acks: AckBatcher;
  /**
   * Messages waiting for a free slot or the rate limit, oldest first. A rate-limited route queues records on
   * the ticker, since its wait can outlast ack_wait; another queues the bare message, whose wait for a slot
   * is short, and makes its record when it goes (fewer objects living through a scavenge: ~2% of the
   * msgs/s in single delivery, bench/README).
   */
  private readonly queue = new Fifo<InFlight | JsMsg>();
  private readonly running = new Set<InFlight>();
  /** Messages kept while the circuit is open, oldest first; each stays on the ticker. */
  private readonly held = new Fifo<InFlight>();
  private readonly circuit: Circuit;
  private readonly settler: Settler;
  /** Set on a route with `batch`: it takes every message instead of the per-message path. */
  private readonly batches: BatchDispatcher | undefined;
  /** Set on a route with `rate_limit`. */
  private readonly pacer: RatePacer | undefined;
  private messages: ConsumerMessages | undefined;
  private stopping = false;
  private isBound = false;
  private readonly idle = new IdleGate();

  constructor(options: RouteConsumerOptions) {
    this.o = options;
    this.route = options.route;
    this.log = options.logger.child({ route: options.route.name });
    this.invoker = new Invoker(options.route);
    this.ticker = new AckTicker(options.route.ack_wait);
    this.acks = new AckBatcher(1, (err, unsent) =>
      this.log.warn({ err, unsent }, "acks not sent: the server redelivers after ack_wait"),
    );
    const { store, events, features, deadLetter } = options;
    this.settler = new Settler({
      store,
      route: this.route,
      deadLetter,
      events,
      log: this.log,
      features,
      acks: this.acks,
      ackLevel: options.route.batch ? "debug" : (options.ackLogLevel ?? "debug"),
    });
    const { batch, circuit_breaker: policy } = options.route;
    // Without a breaker the circuit never opens by itself, but an operator can still pause the route.
    this.circuit = new Circuit(policy || NO_BREAKER, {
      opened: this.circuitOpened,
      halfOpened: this.circuitHalfOpened,
      closed: this.circuitClosed,
      paused: this.operatorPaused,
      resumed: this.operatorResumed,
    });
    const { rate_limit: rateLimit } = options.route;
    if (rateLimit) this.pacer = new RatePacer(rateLimit, () => this.wake());
    if (batch) {
      this.batches = new BatchDispatcher({
        route: { ...options.route, batch },
        invoker: this.invoker,
        settler: this.settler,
        ticker: this.ticker,
        events,
        log: this.log,
        shutdownNakMs: SHUTDOWN_NAK_MS,
        circuit: this.circuit,
        pacer: this.pacer,
      });
    }
  }

  get bound(): boolean {
    return this.isBound;
  }

  /** Messages being invoked or settled (on a batch route: messages in batches in flight). */
  get inFlight(): number {
    return this.running.size + (this.batches?.inFlight ?? 0);
  }

  /**
   * Messages received and not sent yet: waiting for a free slot, the rate limit or (on a batch route) their
   * batch. Held messages are not counted (heldCount).
   */
  get queued(): number {
    return this.queue.length + (this.batches?.queued ?? 0);
  }

  /**
   * The route is paused, messages are held, not sent: its circuit breaker found the function down, or an
   * operator paused it (`pausedBy`).
   */
  get paused(): boolean {
    return this.circuit.holding;
  }

  /** The circuit breaker has paused the route (open or probing), whether or not an operator has too. */
  get pausedByBreaker(): boolean {
    return this.circuit.state !== "closed";
  }

  /** The reason an operator gave for pausing the route (`jetway pause`); undefined when they did not. */
  get pausedBy(): string | undefined {
    return this.circuit.pausedBy;
  }

  /** An operator's pause: nothing is sent until resume(); what arrives meanwhile is held. */
  pause(reason: string): void {
    this.circuit.pause(reason);
  }

  resume(): void {
    this.circuit.resume();
  }

  /** Messages kept while the route is paused: for the breaker's probe, or until an operator resumes it. */
  get heldCount(): number {
    return this.held.length + (this.batches?.heldCount ?? 0);
  }

  /** Messages per second this replica may send: its share of `rate_limit`; undefined without one. */
  get ratePerSecond(): number | undefined {
    return this.pacer?.perSecond;
  }

  /** What this replica says of the route to the others and to `jetway status` (presence.ts). */
  report(): RouteReport {
    return {
      breaker_open: this.pausedByBreaker,
      held: this.heldCount,
      in_flight: this.inFlight,
      waiting: this.queued,
    };
  }

  /** Another replica's circuit for this route opened (circuit-hints.ts): see Circuit.openedElsewhere. */
  openedElsewhere(reason: string): void {
    this.circuit.openedElsewhere(reason);
  }

  /** `replicas` bridges consume this route (presence.ts): each sends its share of the route's `rate_limit`. */
  shareRateLimit(replicas: number): void {
    this.pacer?.share(replicas);
  }

  /** Binds to the existing durable (provisioning created it) and starts consuming. */
  async start(): Promise<void> {
    const consumer = await this.o.js.consumers.get(this.route.stream, durableName(this.route));
    const messages = await consumer.consume({
      max_messages: this.pullSize(),
      // Short-lived pulls: a pull parked on a cluster node that dies is only replaced when it expires,
      // so the default 30 s would stall the route that long after a failover.
      expires: PULL_EXPIRES_MS,
      callback: this.onMessage,
    });
    if (this.stopping) {
      // stop() ran while a rebind was binding: do not leave a pull running behind it.
      await messages.close();
      return;
    }
    this.messages = messages;
    this.isBound = true;
    this.o.events.emit("consumer:bound", { route: this.route.name });
    void this.watch(messages);
  }

  /**
   * A batch route pulls enough to fill every batch slot plus one batch ready for the first slot to free,
   * within what the server would let it hold anyway.
   */
  private pullSize(): number {
    const { batch, concurrency } = this.route;
    if (!batch) return concurrency;
    return Math.max(batch.size, Math.min(batch.size * (concurrency + 1), maxAckPending(this.route)));
  }

  /** Notifications are informational: reported, never thrown. An unexpected end triggers a rebind. */
  private async watch(messages: ConsumerMessages): Promise<void> {
    void (async () => {
      for await (const status of messages.status()) {
        this.o.events.emit("consumer:status", { route: this.route.name, type: status.type, data: status });
        if (NOTABLE_STATUS.has(status.type)) this.log.warn({ status }, `consumer status: ${status.type}`);
        if (durableGone(status.type)) {
          // The pull would otherwise sit on the deleted durable until its request expires (~30 s) while
          // readyz still says bound: end it now, so the rebind below picks up a recreated durable at once.
          this.isBound = false;
          void messages.close().catch(() => undefined);
        }
      }
    })().catch(() => undefined);
    const ended = await messages.closed().catch((error: unknown) => error as Error);
    if (this.stopping || messages !== this.messages) return;
    this.isBound = false;
    const error = ended instanceof Error ? ended : new Error("consumer stopped unexpectedly");
    this.o.events.emit("consumer:error", { route: this.route.name, error });
    this.log.warn({ err: error }, "consumer ended, rebinding");
    while (!this.stopping) {
      await new Promise((resolve) => setTimeout(resolve, REBIND_DELAY_MS));
      if (this.stopping) return;
      try {
        await this.start();
        return;
      } catch (cause) {
        if ((cause as Error).name === "ClosedConnectionError") return;
        this.log.warn({ err: cause }, "rebinding the consumer failed, will try again");
      }
    }
  }

  /**
   * The pull stays open: what arrives is held, and the server stops sending once max_ack_pending messages
   * are out, so the pause is bounded by configuration. Closing the pull instead would drop whatever was
   * already on the wire until its ack_wait ran out.
   */
  private readonly circuitOpened = (pauseMs: number, reason: string, cause: OpenCause): void => {
    this.holdQueued();
    // Announced once the failures that opened it are held too, so `held` counts them.
    queueMicrotask(() => {
      const held = this.heldCount;
      this.o.events.emit("circuit:open", { route: this.route.name, pauseMs, reason, held, cause });
      this.log.warn({ pause_ms: pauseMs, reason, held, cause }, "circuit open: route paused, messages held");
    });
  };

  private readonly circuitHalfOpened = (): void => {
    this.o.events.emit("circuit:half_open", { route: this.route.name, held: this.heldCount });
    this.log.info({ held: this.heldCount }, "circuit half-open: probing with one held delivery");
    const sent = this.batches ? this.batches.probe() : this.probe();
    // Nothing held to try: close, and a function still failing opens the circuit again.
    if (!sent) this.circuit.succeeded();
  };

  private readonly circuitClosed = (pausedMs: number): void => {
    // The circuit already reads closed; what waits now is what the pause held.
    const held = this.held.length + (this.batches?.waiting ?? 0);
    this.o.events.emit("circuit:closed", { route: this.route.name, pausedMs, held });
    this.log.info({ paused_ms: Math.round(pausedMs), held }, "circuit closed: route resumed");
    this.releaseHeld();
  };

  private readonly operatorPaused = (reason: string): void => {
    this.holdQueued();
    this.o.events.emit("route:paused", { route: this.route.name, reason });
    this.log.warn({ reason }, "route paused by an operator: messages held until it is resumed");
  };

  private readonly operatorResumed = (pausedMs: number): void => {
    const held = this.held.length + (this.batches?.waiting ?? 0);
    this.o.events.emit("route:resumed", { route: this.route.name, pausedMs, held });
    this.log.info({ paused_ms: Math.round(pausedMs), held }, "route resumed by an operator");
    this.releaseHeld();
  };

  /** Paused: what waits for a free slot or the rate limit is held too. */
  private holdQueued(): void {
    for (let item = this.queue.shift(); item; item = this.queue.shift()) this.hold(recordOf(item));
  }

  /** Runs what the pause held, oldest first, then goes on. */
  private releaseHeld(): void {
    if (this.batches) this.batches.release();
    else if (!this.stopping) {
      for (let entry = this.held.shift(); entry; entry = this.held.shift()) {
        entry.held = false;
        this.admit(entry);
      }
    }
  }

  /** Keeps a message while the route is paused, alive until the probe, the close or the resume. */
  private hold(entry: InFlight): void {
    entry.held = true;
    this.ticker.add(entry);
    this.held.push(entry);
  }

  /** Sends the oldest held message as the probe (whatever the rate limit says); false when none is held. */
  private probe(): boolean {
    const entry = this.held.shift();
    if (!entry) return false;
    entry.held = false;
    this.pacer?.spend(1);
    void this.process(entry);
    return true;
  }

  private readonly onMessage = (msg: JsMsg): void => {
    if (this.stopping) msg.nak(SHUTDOWN_NAK_MS);
    else if (this.batches) this.batches.push(msg);
    else if (this.circuit.holding) this.hold(new InFlight(msg, performance.now()));
    else if (this.queue.length === 0 && this.mayGo()) void this.process(new InFlight(msg, performance.now()));
    else if (this.pacer === undefined) this.queue.push(msg);
    else this.enqueue(new InFlight(msg, performance.now()));
  };

  /** A slot is free and the rate limit lets one more go now (which it then counts). */
  private mayGo(): boolean {
    return this.running.size < this.route.concurrency && (this.pacer === undefined || this.pacer.take(1));
  }

  /** Sends a held message now if nothing waits before it and it may go; else queues it. */
  private admit(entry: InFlight): void {
    if (this.circuit.holding) this.hold(entry);
    else if (this.queue.length === 0 && this.mayGo()) void this.process(entry);
    else this.enqueue(entry);
  }

  /** Queues a record on the ticker: waiting counts against ack_wait too, and a rate limit can make it long. */
  private enqueue(entry: InFlight): void {
    this.ticker.add(entry);
    this.queue.push(entry);
  }

  /** Sends what waits, oldest first, while slots are free and the rate limit allows. */
  private wake(): void {
    if (this.batches) {
      this.batches.wake();
      return;
    }
    while (!this.stopping && !this.circuit.holding && this.queue.length > 0 && this.mayGo()) {
      void this.process(recordOf(this.queue.shift() as InFlight | JsMsg));
    }
  }

  private async process(entry: InFlight): Promise<void> {
    const { msg } = entry;
    this.running.add(entry);
    try {
      await this.handle(entry);
    } catch (error) {
      // A bug, not an outcome: hand the message back with a delay and keep consuming.
      this.o.events.emit("consumer:error", { route: this.route.name, error: error as Error });
      this.log.error({ err: error, seq: msg.seq }, "unexpected error handling a message");
      if (!entry.abandoned) msg.nak(backoffDelay(msg.info.deliveryCount, this.route));
    } finally {
      this.running.delete(entry);
      if (!entry.held) this.ticker.delete(entry);
      if (this.queue.length > 0) this.wake();
      if (this.running.size === 0) this.idle.notify();
    }
  }

  private async handle(entry: InFlight): Promise<void> {
    const { msg } = entry;
    const d = deliveryOf(msg, this.route.name, performance.now());
    const { delivery } = d;
    this.o.events.emit("invoke:start", d);
    let outcome = beyondMaxDeliver(delivery, this.route);
    let invocation: Invocation | undefined;
    if (!outcome) {
      this.ticker.add(entry);
      // Stays on the ticker until settled: publishing events or a dead letter can take a while too.
      invocation = await this.invoker.invoke(msg, d);
      if (entry.abandoned) return;
      outcome = decideOutcome(invocation, delivery, this.route);
      // A stopping route hands failures back (settled as retries) rather than holding them.
      if (!this.stopping && this.heldByCircuit(entry, d, outcome, invocation)) return;
    }
    await this.settler.settle(entry, d, outcome, invocation);
  }

  /** Tells the circuit how the attempt went; true when the failure is held rather than settled. */
  private heldByCircuit(entry: InFlight, d: Delivery, outcome: Outcome, invocation: Invocation): boolean {
    const { circuit } = this;
    if (!retryableFailure(outcome)) {
      circuit.succeeded();
      return false;
    }
    circuit.failed(
      outcome.reason,
      1,
      retryDelay(outcome),
      outcome.kind === "dead_letter" ? d.delivery : undefined,
    );
    if (!circuit.holding) return false;
    // Still on the ticker from its invocation; process() leaves it there.
    entry.held = true;
    this.held.push(entry);
    this.settler.held(d, outcome.reason, invocation);
    return true;
  }

  /** Stops pulling, lets in-flight work finish for up to `gracePeriodMs`, hands the rest back, closes the pool. */
  async stop(gracePeriodMs: number): Promise<void> {
    this.stopping = true;
    this.isBound = false;
    this.circuit.stop();
    this.pacer?.stop();
    await this.messages?.close().catch(() => undefined);
    for (let item = this.queue.shift(); item; item = this.queue.shift()) {
      if (item instanceof InFlight) this.ticker.delete(item);
      (item instanceof InFlight ? item.msg : item).nak(SHUTDOWN_NAK_MS);
    }
    for (let entry = this.held.shift(); entry; entry = this.held.shift()) {
      this.ticker.delete(entry);
      entry.msg.nak(SHUTDOWN_NAK_MS);
    }
    await this.batches?.stop(gracePeriodMs);
    if (this.running.size > 0) await this.idle.wait(gracePeriodMs);
    for (const entry of this.running) {
      entry.abandoned = true;
      entry.msg.nak(SHUTDOWN_NAK_MS);
    }
    if (this.running.size > 0)
      this.log.warn({ abandoned: this.running.size }, "grace period over, handed back");
    // Settled messages' acks may wait up to a millisecond for company: send them before the connection goes.
    this.acks.flush();
    this.ticker.stop();
    await this.invoker.destroy();
  }
}
