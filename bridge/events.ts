import { EventEmitter } from "node:events";
import type { OpenCause } from "./circuit.ts";

/** What the bridge knows about one delivery of one message; passed to every lifecycle event. */
export interface Delivery {
  route: string;
  subject: string;
  stream: string;
  /** Stream sequence. */
  seq: number;
  /** 1 on first delivery. */
  delivery: number;
  /** Nats-Msg-Id, or `<stream>:<seq>`. */
  id: string;
  /**
   * The W3C trace context passed on to the function and to the events it emits: the message's
   * `traceparent` header, or, with tracing on, that of the bridge's span for this delivery (telemetry.ts
   * sets it at invoke:start), so each hop is a child of the one before.
   */
  traceparent?: string | undefined;
  /** performance.now() when the bridge took the message. */
  startedAt: number;
}

/** `held`: a retryable failure kept by the route's open circuit for its probe; not settled with NATS. */
export type OutcomeKind = "ack" | "retry" | "dead_letter" | "held";

export interface OutcomeEvent {
  delivery: Delivery;
  outcome: OutcomeKind;
  /** HTTP status, or undefined for a transport error / timeout. */
  status?: number | undefined;
  /** Milliseconds from taking the message to settling it. */
  durationMs: number;
  /** Retry delay, when outcome is retry. */
  delayMs?: number | undefined;
  reason?: string | undefined;
  /** Events published before the ack. */
  emitted: number;
}

export interface BatchDelivered {
  route: string;
  /** Messages in the POST. */
  size: number;
  /** HTTP status, or undefined for a transport error / timeout. */
  status?: number | undefined;
  /** Milliseconds from sending the batch to its response. */
  durationMs: number;
}

/**
 * Typed lifecycle events. The consume loop only emits; metrics, logs and traces subscribe, so none of
 * them sit in the per-message path's control flow. One exception, by design: tracing replaces
 * `Delivery.traceparent` at invoke:start with its span's context.
 */
export interface BridgeEventMap {
  "invoke:start": [Delivery];
  "invoke:outcome": [OutcomeEvent];
  "dead_letter:published": [Delivery, string];
  "dead_letter:failed": [Delivery, Error];
  /** One batch POST answered (or failed) on a batch route; per-message events follow as usual. */
  "batch:delivered": [BatchDelivered];
  "consumer:status": [{ route: string; type: string; data: unknown }];
  "consumer:bound": [{ route: string }];
  "consumer:error": [{ route: string; error: Error }];
  /** The route's function looks down: pulling stops and what the route has is held until a probe. */
  "circuit:open": [{ route: string; pauseMs: number; reason: string; held: number; cause: OpenCause }];
  "circuit:half_open": [{ route: string; held: number }];
  /** A probe (or a late answer) succeeded: pulling resumes and the held messages run. */
  "circuit:closed": [{ route: string; pausedMs: number; held: number }];
  /** An operator paused the route (`jetway pause`, on every replica): messages are held until resumed. */
  "route:paused": [{ route: string; reason: string }];
  "route:resumed": [{ route: string; pausedMs: number; held: number }];
}

export class BridgeEvents extends EventEmitter<BridgeEventMap> {}
