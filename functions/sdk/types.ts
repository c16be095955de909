import type { Context } from "hono";
import type { Logger } from "pino";
import type { EventData, EventInput, EventType } from "../../schemas/define.ts";

/** Where a delivery came from, read from the CloudEvent headers (or batch attributes) the bridge sets. */
export interface EventMeta {
  /** CloudEvent id: the message's Nats-Msg-Id, or `<stream>:<seq>`. */
  id: string;
  /** CloudEvent type: the NATS subject. */
  subject: string;
  /** Bridge route name, when sent. */
  route: string | undefined;
  stream: string;
  /** Stream sequence (0 when not sent, e.g. a hand-made request). */
  seq: number;
  /** 1 on first delivery. */
  delivery: number;
  maxDeliver: number | undefined;
  time: string | undefined;
  traceparent: string | undefined;
}

export interface InvokedEvent<T extends EventType = EventType> extends EventMeta {
  /** The payload as the contract reads it: validated, unknown keys dropped, defaults filled in. */
  data: EventData<T>;
  /**
   * The payload as it was published, before the contract parsed it: keys this version of the contract does
   * not know (an optional field a newer producer added) and fields it would default, as they were. For code
   * that keeps or forwards the event itself, like an archive.
   */
  raw: unknown;
}

/** An event a function asks the bridge to publish after it acks the input. */
export interface EmittedEvent {
  subject: string;
  data: unknown;
  /** Deterministic id (Nats-Msg-Id) for deduplication; the bridge derives `<input id>:<index>` if absent. */
  id?: string;
  headers?: Record<string, string>;
}

export interface EmitOptions {
  id?: string;
  headers?: Record<string, string>;
}

/** String configuration for this request: Workers bindings, or process.env on Node and Lambda. */
export type Vars = Record<string, string | undefined>;

export type Emit = <U extends EventType>(type: U, data: EventInput<U>, options?: EmitOptions) => void;

export interface HandlerContext<T extends EventType = EventType> {
  event: InvokedEvent<T>;
  log: Logger;
  emit: Emit;
  env: Vars;
  /** The Hono context, for raw bindings (KV, Hyperdrive…) and anything else the runtime gives. */
  c: Context;
}

export type Handler<T extends EventType> = (
  event: InvokedEvent<T>,
  ctx: HandlerContext<T>,
) => void | Promise<void>;

export interface FailOptions {
  reason: string;
  /** Retry no sooner than this many seconds. */
  retryAfterS?: number;
  /** Do not retry: dead-letter the message now. */
  deadLetter?: boolean;
}

export interface BatchContext {
  log: Logger;
  env: Vars;
  c: Context;
  /** Marks one message of the batch failed; every message not failed is acked. */
  fail(eventId: string, options: FailOptions): void;
  /**
   * Fails one message with what `err` would mean for a single delivery: RetryableError's delay,
   * InvalidEventError → dead letter, anything else retried (and logged with its stack).
   */
  failWith(eventId: string, err: unknown): void;
  /** Emits an event on behalf of one input message (dropped if that message is failed). */
  emitFor<U extends EventType>(eventId: string, type: U, data: EventInput<U>, options?: EmitOptions): void;
  /** `emitFor` bound to one input message: an `Emit`, for code shared with single-message handlers. */
  emitterFor(eventId: string): Emit;
}

export type BatchHandler<T extends EventType> = (
  events: InvokedEvent<T>[],
  ctx: BatchContext,
) => void | Promise<void>;
