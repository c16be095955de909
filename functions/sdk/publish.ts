import type { EventInput, EventType } from "../../schemas/define.ts";
import { signIngressRequest } from "./contract.ts";
import { toEmitted } from "./emit.ts";

/**
 * Publishing from outside a delivery — an HTTP intake, a cron job — through the bridge's batch ingress
 * (`POST /v1/publish`), so that code never holds a NATS connection either. Inside a handler, `ctx.emit`
 * is the way: the bridge publishes what the answer carries before it acks.
 */

/** The ingress did not store the event. `status` is the HTTP status when there was an answer. */
export class PublishError extends Error {
  override name = "PublishError";
  readonly status: number | undefined;
  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
}

export interface PublishTarget {
  /** Base URL of the bridge, e.g. http://127.0.0.1:8080. */
  url: string;
  /** The bridge's `http.publish_token`, sent as a bearer token. */
  token?: string | undefined;
  /** The bridge's `http.publish_secret`: each request is signed (`x-jetway-signature` over path and body). */
  secret?: string | undefined;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** One event for the ingress. `id` becomes the JetStream Nats-Msg-Id: publishing it again is deduplicated. */
export interface IngressEvent {
  subject: string;
  id?: string | undefined;
  data: unknown;
  traceparent?: string | undefined;
}

interface IngressResults {
  results?: ({ error?: { code?: string; message?: string; status?: number } } | null)[];
}

/** The per-event failures of a 207, as PublishErrors; entries the bridge stored come back as `true`. */
function partialResults(body: IngressResults, count: number): (true | PublishError)[] {
  const results = Array.isArray(body.results) ? body.results : [];
  return Array.from({ length: count }, (_, i) => {
    const entry = results[i];
    if (entry === undefined || entry === null) {
      return new PublishError("publish ingress gave no result for the event");
    }
    const error = entry?.error;
    if (!error) return true;
    return new PublishError(`publish ingress refused the event: ${error.code ?? "error"}`, {
      ...(typeof error.status === "number" ? { status: error.status } : {}),
    });
  });
}

const INGRESS_PATH = "/v1/publish";

/**
 * Publishes events in one request. One result per event, in order: `true` once JetStream stored it, else
 * a PublishError (unreachable, refused, or the bridge's error for that event). Never rejects.
 */
export async function publishEvents(
  target: PublishTarget,
  events: readonly IngressEvent[],
): Promise<(true | PublishError)[]> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  const body = JSON.stringify({
    events: events.map((e) => ({
      subject: e.subject,
      ...(e.id === undefined ? {} : { id: e.id }),
      data: e.data,
      ...(e.traceparent ? { headers: { traceparent: e.traceparent } } : {}),
    })),
  });
  if (target.secret)
    headers["x-jetway-signature"] = await signIngressRequest(target.secret, INGRESS_PATH, body);
  let res: Response;
  try {
    res = await (target.fetch ?? fetch)(new URL(INGRESS_PATH, target.url), {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(target.timeoutMs ?? 5_000),
    });
  } catch (cause) {
    const error = new PublishError(`publish ingress unreachable: ${(cause as Error).message}`, { cause });
    return events.map(() => error);
  }
  if (res.status === 207) {
    let answer: IngressResults;
    try {
      answer = (await res.json()) as IngressResults;
    } catch (cause) {
      // Cut short, timed out while arriving, or not the bridge's: which events were stored is unknown.
      const error = new PublishError(`publish ingress answered 207 unreadably: ${(cause as Error).message}`, {
        cause,
        status: 207,
      });
      return events.map(() => error);
    }
    return partialResults(answer, events.length);
  }
  // Read, not `body.cancel()`: the answer is a few bytes, and asking a buffered Node response for its
  // stream builds a whole Response just to cancel it (~1.7% of the order function's CPU). The status has
  // already said what happened, so a body cut short changes nothing.
  await res.arrayBuffer().catch(() => undefined);
  // Only the ingress's 202 means stored: a 200 page from a proxy or a wrong URL must not lose events.
  if (res.status === 202) return events.map(() => true);
  const why = res.ok ? `${res.status}, not the ingress's 202` : String(res.status);
  const error = new PublishError(`publish ingress answered ${why}`, { status: res.status });
  return events.map(() => error);
}

export interface PublishOptions {
  /** Becomes the Nats-Msg-Id: the same id published again within the stream's duplicate window is stored once. */
  id?: string;
  traceparent?: string;
}

/** A typed client of the bridge's ingress. */
export interface Publisher {
  /**
   * Validates `data` against the type's schema (EmitValidationError, nothing sent, when it does not fit),
   * then publishes it; resolves once JetStream stored it, else rejects with a PublishError.
   */
  publish<U extends EventType>(type: U, data: EventInput<U>, options?: PublishOptions): Promise<void>;
  /** Several events in one request, each validated first; one result per event, as publishEvents. */
  publishAll(events: readonly TypedEvent[]): Promise<(true | PublishError)[]>;
}

/** An event for `publishAll`: its type, its data and, optionally, an id and trace context. */
export interface TypedEvent<U extends EventType = EventType> extends PublishOptions {
  type: U;
  data: EventInput<U>;
}

function ingressEvent<U extends EventType>(
  type: U,
  data: EventInput<U>,
  options: PublishOptions,
): IngressEvent {
  const event = toEmitted(type, data);
  return { subject: event.subject, data: event.data, id: options.id, traceparent: options.traceparent };
}

/**
 * `createPublisher({ url, secret })` → `publish(OrderCreated, data, { id })`: the same contract checks as
 * `ctx.emit`, over the bridge's ingress.
 */
export function createPublisher(target: PublishTarget): Publisher {
  return {
    async publish(type, data, options = {}) {
      const [result] = await publishEvents(target, [ingressEvent(type, data, options)]);
      if (result !== true) throw result ?? new PublishError("publish ingress gave no result for the event");
    },
    async publishAll(events) {
      return publishEvents(
        target,
        events.map((e) => ingressEvent(e.type, e.data, e)),
      );
    },
  };
}
