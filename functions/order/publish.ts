import { Coalescer } from "../sdk/coalesce.ts";

/** The bridge's publish ingress could not take the event; the order stays `pending_publish`. */
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
  token?: string | undefined;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** One event for the ingress. `id` becomes the JetStream Nats-Msg-Id: publishing it again is deduplicated. */
export interface OutboxEvent {
  subject: string;
  id: string;
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
    if (entry === undefined) return new PublishError("publish ingress gave no result for the event");
    const error = entry?.error;
    if (!error) return true;
    return new PublishError(`publish ingress refused the event: ${error.code ?? "error"}`, {
      ...(typeof error.status === "number" ? { status: error.status } : {}),
    });
  });
}

/**
 * Publishes events through the bridge's batch ingress (`POST /v1/publish`), so functions never hold a NATS
 * connection. One result per event, in order: `true` once JetStream stored it, else a PublishError.
 */
export async function publishEvents(
  target: PublishTarget,
  events: readonly OutboxEvent[],
): Promise<(true | PublishError)[]> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  const body = JSON.stringify({
    events: events.map((e) => ({
      subject: e.subject,
      id: e.id,
      data: e.data,
      ...(e.traceparent ? { headers: { traceparent: e.traceparent } } : {}),
    })),
  });
  let res: Response;
  try {
    res = await (target.fetch ?? fetch)(new URL("/v1/publish", target.url), {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(target.timeoutMs ?? 5_000),
    });
  } catch (cause) {
    const error = new PublishError(`publish ingress unreachable: ${(cause as Error).message}`, { cause });
    return events.map(() => error);
  }
  if (res.status === 207) return partialResults((await res.json()) as IngressResults, events.length);
  // Read, not `body.cancel()`: the answer is a few bytes, and asking a buffered Node response for its
  // stream builds a whole Response just to cancel it (~1.7% of the order function's CPU). The status has
  // already said what happened, so a body cut short changes nothing.
  await res.arrayBuffer().catch(() => undefined);
  if (res.ok) return events.map(() => true);
  const error = new PublishError(`publish ingress answered ${res.status}`, { status: res.status });
  return events.map(() => error);
}

/** Publishes one event, or rejects with a PublishError when the ingress did not store it. */
export type EventPublisher = (scope: object, target: PublishTarget, event: OutboxEvent) => Promise<true>;

/**
 * An EventPublisher whose calls share ingress requests: events published at the same time in one scope
 * (the function's database handle: one per request on Workers, one per process on Node) to one target
 * go out in one `POST /v1/publish`.
 */
export function coalescingPublisher(): EventPublisher {
  const publishers = new WeakMap<object, Map<string, Coalescer<OutboxEvent, true>>>();
  return (scope, target, event) => {
    let byTarget = publishers.get(scope);
    if (!byTarget) {
      byTarget = new Map();
      publishers.set(scope, byTarget);
    }
    const key = `${target.url}\n${target.token ?? ""}`;
    let publisher = byTarget.get(key);
    if (!publisher) {
      publisher = new Coalescer<OutboxEvent, true>((events) => publishEvents(target, events), {
        maxInFlight: 2,
      });
      byTarget.set(key, publisher);
    }
    return publisher.add(event);
  };
}
