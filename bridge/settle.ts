import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type pino from "pino";
import type { AckBatcher } from "./ack-batcher.ts";
import type { Config, RouteConfig } from "./config.ts";
import { publishDeadLetter } from "./dead-letter.ts";
import type { BridgeEvents, Delivery, OutcomeKind } from "./events.ts";
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
  js: JetStreamClient;
  route: RouteConfig;
  deadLetter: Config["dead_letter"];
  events: BridgeEvents;
  /** Scoped to the route. */
  log: pino.Logger;
  features: ServerFeatures;
  acks: AckBatcher;
  /** Log acks at debug (batch routes log one info line per batch instead). */
  quietAcks?: boolean;
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

  /** Resolves to what was done, or undefined when a shutdown abandoned the message meanwhile. */
  async settle(
    entry: Settleable,
    d: Delivery,
    outcome: Outcome,
    inv?: SettleContext,
  ): Promise<OutcomeKind | undefined> {
    const { msg } = entry;
    const { route } = this.o;
    if (outcome.kind === "ack" && outcome.events.length > 0) {
      try {
        const source = { id: d.id, traceparent: d.traceparent, tracestate: msg.headers?.get("tracestate") };
        await publishEvents(this.o.js, source, outcome.events);
      } catch (error) {
        if (entry.abandoned) return undefined;
        const reason = (error as Error).message;
        if (error instanceof EventPublishError && error.unroutable) {
          outcome = { kind: "dead_letter", reason };
        } else if (d.delivery >= route.max_deliver) {
          outcome = {
            kind: "dead_letter",
            reason: `attempt ${d.delivery} of ${route.max_deliver} failed: ${reason}`,
          };
        } else {
          outcome = { kind: "retry", delayMs: backoffDelay(d.delivery, route), reason };
        }
      }
    }
    if (entry.abandoned) return undefined;
    let kind: OutcomeKind = outcome.kind;
    let delayMs: number | undefined;
    let reason: string | undefined;
    if (outcome.kind === "ack") {
      this.o.acks.ack(msg);
    } else if (outcome.kind === "retry") {
      delayMs = outcome.delayMs;
      reason = outcome.reason;
      this.o.acks.nak(msg, delayMs);
    } else {
      reason = outcome.reason;
      try {
        await publishDeadLetter(this.o.js, {
          msg,
          route: route.name,
          url: route.url,
          prefix: this.o.deadLetter.subject_prefix,
          delivery: d.delivery,
          reason,
          status: inv?.status,
          response: inv?.text,
        });
        this.o.acks.term(msg, this.o.features.termWithReason ? reason.slice(0, 256) : undefined);
        this.o.events.emit("dead_letter:published", d, reason);
      } catch (error) {
        this.o.events.emit("dead_letter:failed", d, error as Error);
        messageLogger(this.o.log, d).error({ err: error }, "dead-lettering failed, message will be retried");
        kind = "retry";
        delayMs = backoffDelay(d.delivery, route);
        reason = `dead-lettering failed (${reason}): ${(error as Error).message}`;
        this.o.acks.nak(msg, delayMs);
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
    if (kind === "ack" && this.o.quietAcks) logOutcome(this.o.log, event, "debug");
    else logOutcome(this.o.log, event);
    return kind;
  }
}
