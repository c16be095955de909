import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type pino from "pino";
import { AckBatcher } from "./ack-batcher.ts";
import { AckTicker, type Tickable } from "./ack-ticker.ts";
import { type Config, durableName, type RouteConfig } from "./config.ts";
import { publishDeadLetter } from "./dead-letter.ts";
import type { BridgeEvents, Delivery, OutcomeKind } from "./events.ts";
import { Fifo } from "./fifo.ts";
import { type Invocation, Invoker } from "./invoker.ts";
import { backoffDelay, beyondMaxDeliver, decideOutcome, type Outcome } from "./outcome.ts";
import { logOutcome, messageLogger } from "./outcome-log.ts";
import { EventPublishError, publishEvents } from "./publisher.ts";
import type { ServerFeatures } from "./server-features.ts";

export interface RouteConsumerOptions {
  js: JetStreamClient;
  route: RouteConfig;
  deadLetter: Config["dead_letter"];
  events: BridgeEvents;
  logger: pino.Logger;
  features: ServerFeatures;
}

/** Delay of the nak that hands unfinished messages back at shutdown (never 0: 2.9 would resend at once). */
const SHUTDOWN_NAK_MS = 100;
const REBIND_DELAY_MS = 1_000;
/** Consumer notifications worth a log line; the rest (pulls, heartbeats) only go to consumer:status. */
const NOTABLE_STATUS = new Set(["heartbeats_missed", "consumer_deleted", "consumer_not_found"]);
for (const type of ["stream_not_found", "no_responders", "exceeded_limits"]) NOTABLE_STATUS.add(type);

/** One message being worked on; the ack ticker keeps it alive, stop() abandons it. */
class InFlight implements Tickable {
  msg: JsMsg;
  touchedAt: number;
  abandoned = false;
  constructor(msg: JsMsg, now: number) {
    this.msg = msg;
    this.touchedAt = now;
  }
}

/**
 * Pulls one route's durable consumer and runs every message through invoke → decide → settle, with at
 * most `route.concurrency` invocations in flight; the rest wait in an O(1) queue (bounded by the
 * consumer's max_ack_pending on the server).
 */
export class RouteConsumer {
  private readonly o: RouteConsumerOptions;
  private readonly route: RouteConfig;
  private readonly log: pino.Logger;
  private readonly invoker: Invoker;
  private readonly ticker: AckTicker;
  private readonly acks = new AckBatcher();
  private readonly queue = new Fifo<JsMsg>();
  private readonly running = new Set<InFlight>();
  private messages: ConsumerMessages | undefined;
  private stopping = false;
  private isBound = false;
  private onIdle: (() => void) | undefined;

  constructor(options: RouteConsumerOptions) {
    this.o = options;
    this.route = options.route;
    this.log = options.logger.child({ route: options.route.name });
    this.invoker = new Invoker(options.route);
    this.ticker = new AckTicker(options.route.ack_wait);
  }

  get bound(): boolean {
    return this.isBound;
  }

  get inFlight(): number {
    return this.running.size;
  }

  /** Binds to the existing durable (provisioning created it) and starts consuming. */
  async start(): Promise<void> {
    const consumer = await this.o.js.consumers.get(this.route.stream, durableName(this.route));
    const messages = await consumer.consume({
      max_messages: this.route.concurrency,
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

  /** Notifications are informational: reported, never thrown. An unexpected end triggers a rebind. */
  private async watch(messages: ConsumerMessages): Promise<void> {
    void (async () => {
      for await (const status of messages.status()) {
        this.o.events.emit("consumer:status", { route: this.route.name, type: status.type, data: status });
        if (NOTABLE_STATUS.has(status.type)) this.log.warn({ status }, `consumer status: ${status.type}`);
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

  private readonly onMessage = (msg: JsMsg): void => {
    if (this.stopping) msg.nak(SHUTDOWN_NAK_MS);
    else if (this.running.size < this.route.concurrency) void this.process(msg);
    else this.queue.push(msg);
  };

  private async process(msg: JsMsg): Promise<void> {
    const entry = new InFlight(msg, performance.now());
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
      this.ticker.delete(entry);
      const next = this.queue.shift();
      if (next) this.onMessage(next);
      else if (this.running.size === 0) this.onIdle?.();
    }
  }

  private async handle(entry: InFlight): Promise<void> {
    const { msg } = entry;
    const { stream, streamSequence: seq, deliveryCount: delivery } = msg.info;
    const h = msg.headers;
    const d: Delivery = {
      route: this.route.name,
      subject: msg.subject,
      stream,
      seq,
      delivery,
      id: h?.get("Nats-Msg-Id") || `${stream}:${seq}`,
      traceparent: h?.get("traceparent") || undefined,
      startedAt: entry.touchedAt,
    };
    this.o.events.emit("invoke:start", d);
    let outcome = beyondMaxDeliver(delivery, this.route);
    let invocation: Invocation | undefined;
    if (!outcome) {
      this.ticker.add(entry);
      // Stays on the ticker until settled: publishing events or a dead letter can take a while too.
      invocation = await this.invoker.invoke(msg, d);
      if (entry.abandoned) return;
      outcome = decideOutcome(invocation, delivery, this.route);
    }
    await this.settle(entry, d, outcome, invocation);
  }

  /** Executes a decision. Nothing is acked before its events are stored; nothing is termed before its DLQ copy. */
  private async settle(entry: InFlight, d: Delivery, outcome: Outcome, inv?: Invocation): Promise<void> {
    const { msg } = entry;
    if (outcome.kind === "ack" && outcome.events.length > 0) {
      try {
        const source = { id: d.id, traceparent: d.traceparent, tracestate: msg.headers?.get("tracestate") };
        await publishEvents(this.o.js, source, outcome.events);
      } catch (error) {
        if (entry.abandoned) return;
        const reason = (error as Error).message;
        if (error instanceof EventPublishError && error.unroutable) {
          outcome = { kind: "dead_letter", reason };
        } else if (d.delivery >= this.route.max_deliver) {
          outcome = {
            kind: "dead_letter",
            reason: `attempt ${d.delivery} of ${this.route.max_deliver} failed: ${reason}`,
          };
        } else {
          outcome = { kind: "retry", delayMs: backoffDelay(d.delivery, this.route), reason };
        }
      }
    }
    if (entry.abandoned) return;
    let kind: OutcomeKind = outcome.kind;
    let delayMs: number | undefined;
    let reason: string | undefined;
    if (outcome.kind === "ack") {
      this.acks.ack(msg);
    } else if (outcome.kind === "retry") {
      delayMs = outcome.delayMs;
      reason = outcome.reason;
      this.acks.nak(msg, delayMs);
    } else {
      reason = outcome.reason;
      try {
        await publishDeadLetter(this.o.js, {
          msg,
          route: this.route.name,
          url: this.route.url,
          prefix: this.o.deadLetter.subject_prefix,
          delivery: d.delivery,
          reason,
          status: inv?.status,
          response: inv?.text,
        });
        this.acks.term(msg, this.o.features.termWithReason ? reason.slice(0, 256) : undefined);
        this.o.events.emit("dead_letter:published", d, reason);
      } catch (error) {
        this.o.events.emit("dead_letter:failed", d, error as Error);
        messageLogger(this.log, d).error({ err: error }, "dead-lettering failed, message will be retried");
        kind = "retry";
        delayMs = backoffDelay(d.delivery, this.route);
        reason = `dead-lettering failed (${reason}): ${(error as Error).message}`;
        this.acks.nak(msg, delayMs);
      }
    }
    const event = {
      delivery: d,
      outcome: kind,
      status: inv?.status,
      durationMs: performance.now() - d.startedAt,
      delayMs,
      reason,
      emitted: kind === "ack" && outcome.kind === "ack" ? outcome.events.length : 0,
    };
    this.o.events.emit("invoke:outcome", event);
    logOutcome(this.log, event);
  }

  /** Stops pulling, lets in-flight work finish for up to `gracePeriodMs`, hands the rest back, closes the pool. */
  async stop(gracePeriodMs: number): Promise<void> {
    this.stopping = true;
    this.isBound = false;
    await this.messages?.close().catch(() => undefined);
    for (let msg = this.queue.shift(); msg; msg = this.queue.shift()) msg.nak(SHUTDOWN_NAK_MS);
    if (this.running.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onIdle = resolve;
        timer = setTimeout(resolve, gracePeriodMs);
      });
      clearTimeout(timer);
      this.onIdle = undefined;
    }
    for (const entry of this.running) {
      entry.abandoned = true;
      entry.msg.nak(SHUTDOWN_NAK_MS);
    }
    if (this.running.size > 0)
      this.log.warn({ abandoned: this.running.size }, "grace period over, handed back");
    this.ticker.stop();
    await this.invoker.destroy();
  }
}
