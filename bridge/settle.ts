import type { JsMsg } from "@nats-io/jetstream";
import type pino from "pino";
import type { AckBatcher } from "./ack-batcher.ts";
import type { Config, RouteConfig } from "./config.ts";
import { publishDeadLetter } from "./dead-letter.ts";
import type { BridgeEvents, Delivery, OutcomeKind } from "./events.ts";
import type { MessageStore } from "./js-publisher.ts";
import { backoffDelay, type InvocationResult, type Outcome } from "./outcome.ts";
import { logOutcome, messageLogger } from "./outcome-log.ts";
import { EventPublishError, publishEvents } from "./publisher.ts";
import type { ServerFeatures } from "./server-features.ts";

/** The lifecycle record of one message, taken at `startedAt` (performance.now()). */
export function deliveryOf(msg: JsMsg, route: string, startedAt: number): Delivery {
  const { stream, streamSequence: seq, deliveryCount: delivery } = msg.info;
  const h = msg.headers;
  return {
    route,
    subject: msg.subject,
    stream,
    seq,
    delivery,
    id: h?.get("Nats-Msg-Id") || `${stream}:${seq}`,
    traceparent: h?.get("traceparent") || undefined,
    startedAt,
  };
}

/** A message being settled; `abandoned` is set by a shutdown that already handed it back. */
export interface Settleable {
  msg: JsMsg;
  abandoned: boolean;
}

/** What the response said, as far as a dead letter and the outcome event care. */
export interface SettleContext extends InvocationResult {
  text?: string | undefined;
}

export interface SettlerOptions {
  /** Where events and dead letters are stored. */
  store: MessageStore;
  route: RouteConfig;
  deadLetter: Config["dead_letter"];
  events: BridgeEvents;
  /** Scoped to the route. */
  log: pino.Logger;
  features: ServerFeatures;
  acks: AckBatcher;
  /** The level of an ack's line (batch routes: debug, their batch line says how many were acked). */
  ackLevel: "debug" | "info";
}

/**
 * Executes one message's decision, the same way for single and batch delivery. Nothing is acked before
 * its events are stored; nothing is termed before its dead-letter copy is.
 */
export class Settler {
  private readonly o: SettlerOptions;

  constructor(options: SettlerOptions) {
    this.o = options;
  }

  /**
   * Returns what was done, or undefined when a shutdown abandoned the message meanwhile. Synchronous when
   * nothing has to be stored first (an ack without events, a retry): at batch rates a promise per message
   * is measurable; a promise only when events or a dead letter are published first.
   */
  settle(
    entry: Settleable,
    d: Delivery,
    outcome: Outcome,
    inv?: SettleContext,
  ): OutcomeKind | undefined | Promise<OutcomeKind | undefined> {
    if (outcome.kind === "ack" && outcome.events.length > 0)
      return this.publishThenAck(entry, d, outcome, inv);
    if (entry.abandoned) return undefined;
    if (outcome.kind === "dead_letter") return this.deadLetter(entry, d, outcome.reason, inv);
    if (outcome.kind === "ack") {
      this.o.acks.ack(entry.msg);
      return this.settled(d, "ack", inv);
    }
    this.o.acks.nak(entry.msg, outcome.delayMs);
    return this.settled(d, "retry", inv, outcome.delayMs, outcome.reason);
  }

  /** A retryable failure an open circuit keeps for its probe: announced and logged, nothing sent to NATS. */
  held(d: Delivery, reason: string, inv?: SettleContext): void {
    this.settled(d, "held", inv, undefined, reason);
  }

  private async publishThenAck(
    entry: Settleable,
    d: Delivery,
    outcome: Extract<Outcome, { kind: "ack" }>,
    inv?: SettleContext,
  ): Promise<OutcomeKind | undefined> {
    const { msg } = entry;
    const { route } = this.o;
    try {
      const source = { id: d.id, traceparent: d.traceparent, tracestate: msg.headers?.get("tracestate") };
      await publishEvents(this.o.store, source, outcome.events);
    } catch (error) {
      if (entry.abandoned) return undefined;
      const reason = (error as Error).message;
      if (error instanceof EventPublishError && error.permanent) {
        return this.settle(entry, d, { kind: "dead_letter", reason }, inv);
      }
      if (d.delivery >= route.max_deliver) {
        const last = `attempt ${d.delivery} of ${route.max_deliver} failed: ${reason}`;
        return this.settle(entry, d, { kind: "dead_letter", reason: last }, inv);
      }
      return this.settle(entry, d, { kind: "retry", delayMs: backoffDelay(d.delivery, route), reason }, inv);
    }
    if (entry.abandoned) return undefined;
    this.o.acks.ack(msg);
    return this.settled(d, "ack", inv, undefined, undefined, outcome.events.length);
  }

  /** Terms only once the dead-letter copy is stored; if storing fails, the message is retried instead. */
  private async deadLetter(
    entry: Settleable,
    d: Delivery,
    reason: string,
    inv?: SettleContext,
  ): Promise<OutcomeKind> {
    const { msg } = entry;
    const { route } = this.o;
    try {
      await publishDeadLetter(this.o.store, {
        msg,
        route: route.name,
        url: route.url,
        prefix: this.o.deadLetter.subject_prefix,
        delivery: d.delivery,
        reason,
        status: inv?.status,
        response: inv?.text,
      });
    } catch (error) {
      this.o.events.emit("dead_letter:failed", d, error as Error);
      messageLogger(this.o.log, d).error({ err: error }, "dead-lettering failed, message will be retried");
      const delayMs = backoffDelay(d.delivery, route);
      this.o.acks.nak(msg, delayMs);
      const why = `dead-lettering failed (${reason}): ${(error as Error).message}`;
      return this.settled(d, "retry", inv, delayMs, why);
    }
    this.o.acks.term(msg, this.o.features.termWithReason ? reason.slice(0, 256) : undefined);
    this.o.events.emit("dead_letter:published", d, reason);
    return this.settled(d, "dead_letter", inv, undefined, reason);
  }

  /** Announces and logs what was done. */
  private settled(
    d: Delivery,
    kind: OutcomeKind,
    inv: SettleContext | undefined,
    delayMs?: number,
    reason?: string,
    emitted = 0,
  ): OutcomeKind {
    const event = {
      delivery: d,
      outcome: kind,
      status: inv?.status,
      durationMs: performance.now() - d.startedAt,
      delayMs,
      reason,
      emitted,
    };
    this.o.events.emit("invoke:outcome", event);
    if (kind === "ack") logOutcome(this.o.log, event, this.o.ackLevel);
    else logOutcome(this.o.log, event);
    return kind;
  }
}
