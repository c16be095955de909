import { Coalescer } from "../sdk/coalesce.ts";
import { type IngressEvent, PublishError, type PublishTarget, publishEvents } from "../sdk/publish.ts";

export { PublishError, type PublishTarget };

/** The order's outbox event: always with an id, so publishing it again is deduplicated. */
export interface OutboxEvent extends IngressEvent {
  id: string;
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
    const key = `${target.url}\n${target.token ?? ""}\n${target.secret ?? ""}`;
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
