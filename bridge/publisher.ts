import { JetStreamApiError, type PubAck } from "@nats-io/jetstream";
import { Empty, errors, type MsgHdrs, headers as natsHeaders } from "@nats-io/nats-core";
import type { MessageStore } from "./js-publisher.ts";
import type { EmittedEvent } from "./outcome.ts";

// JetStream error code for "message size exceeds maximum allowed" (the stream's max_msg_size).
const MESSAGE_TOO_LARGE = 10054;

/**
 * The message can never be stored as it is: over the stream's max_msg_size, or (headers included) over
 * the server's max_payload, which nats.js refuses before sending.
 */
export function isTooLarge(error: unknown): boolean {
  if (error instanceof JetStreamApiError) return error.code === MESSAGE_TOO_LARGE;
  return error instanceof errors.InvalidArgumentError && /max_payload/.test(error.message);
}

/** Why publishing an event failed: only a `failed` publish can succeed when tried again. */
export type EventPublishFailure = "unroutable" | "too_large" | "failed";

/** Publishing a function's events failed; `permanent` when trying again cannot help. */
export class EventPublishError extends Error {
  override name = "EventPublishError";
  readonly subject: string;
  readonly failure: EventPublishFailure;
  constructor(subject: string, failure: EventPublishFailure, options: { cause: unknown }) {
    const why =
      failure === "unroutable"
        ? "no stream binds the subject"
        : failure === "too_large"
          ? `the event is too large to store (${String((options.cause as Error)?.message)})`
          : String((options.cause as Error)?.message);
    super(`publishing event to "${subject}" failed: ${why}`, options);
    this.subject = subject;
    this.failure = failure;
  }

  get permanent(): boolean {
    return this.failure !== "failed";
  }
}

/** The input message an event came from: its id seeds event ids, its trace context is carried on. */
export interface EventSource {
  id: string;
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

const encoder = new TextEncoder();

/** Nats-Msg-Id of an event: its own id, else derived from the input so a redelivery dedups. */
export const eventMsgId = (source: EventSource, event: EmittedEvent, index: number): string =>
  event.id ?? `${source.id}:${index}`;

/**
 * An event's headers as the bridge publishes it: Content-Type JSON, the event's own headers, then the trace
 * context it came with unless the event sets its own. Throws on a header NATS refuses.
 */
export function eventHeaders(
  event: EmittedEvent,
  trace: Pick<EventSource, "traceparent" | "tracestate">,
): MsgHdrs {
  const h = natsHeaders();
  // append, not set, where the key cannot be there yet: set looks for it first (two arrays per call).
  h.append("Content-Type", "application/json");
  if (event.headers) for (const [k, v] of Object.entries(event.headers)) h.set(k, v);
  if (trace.traceparent && !h.has("traceparent")) h.append("traceparent", trace.traceparent);
  if (trace.tracestate && !h.has("tracestate")) h.append("tracestate", trace.tracestate);
  return h;
}

/** An event's payload: its `data` as JSON, or empty. */
export const eventData = (event: EmittedEvent): Uint8Array =>
  event.data === undefined ? Empty : encoder.encode(JSON.stringify(event.data));

function publishOne(js: MessageStore, source: EventSource, event: EmittedEvent, index: number) {
  return js.publish(event.subject, eventData(event), {
    msgID: eventMsgId(source, event, index),
    headers: eventHeaders(event, source),
  });
}

/** True only when the server says no stream matches; an unreachable server is not proof. */
async function isUnroutable(js: MessageStore, subject: string): Promise<boolean> {
  try {
    const jsm = await js.jetstreamManager(false);
    await jsm.streams.find(subject);
    return false;
  } catch (error) {
    return /no stream matches subject/i.test((error as Error).message);
  }
}

/**
 * Publishes every event and waits for all PubAcks; throws EventPublishError on the first failure.
 * Callers ack the input only after this resolves, so an event is never lost behind an ack.
 */
export async function publishEvents(
  js: MessageStore,
  source: EventSource,
  events: readonly EmittedEvent[],
): Promise<PubAck[]> {
  // One event per message is the common case: no allSettled bookkeeping for it.
  if (events.length === 1) {
    const event = events[0] as EmittedEvent;
    try {
      return [await publishOne(js, source, event, 0)];
    } catch (cause) {
      throw await publishError(js, event.subject, cause);
    }
  }
  const settled = await Promise.allSettled(events.map((event, i) => publishOne(js, source, event, i)));
  const acks: PubAck[] = [];
  for (let i = 0; i < settled.length; i++) {
    const result = settled[i];
    if (result?.status === "fulfilled") acks.push(result.value);
    else throw await publishError(js, events[i]?.subject ?? "", result?.reason);
  }
  return acks;
}

/** Why an event's publish failed, as the settle step needs it: permanent or worth a retry. */
async function publishError(js: MessageStore, subject: string, cause: unknown): Promise<EventPublishError> {
  const failure = isTooLarge(cause)
    ? "too_large"
    : (await isUnroutable(js, subject))
      ? "unroutable"
      : "failed";
  return new EventPublishError(subject, failure, { cause });
}
