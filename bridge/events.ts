import { EventEmitter } from "node:events";

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
  /** W3C traceparent from the message headers, when present. */
  traceparent?: string | undefined;
  /** performance.now() when the bridge took the message. */
  startedAt: number;
}

export type OutcomeKind = "ack" | "retry" | "dead_letter";

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
 * them sit in the per-message path's control flow.
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
}

export class BridgeEvents extends EventEmitter<BridgeEventMap> {}
