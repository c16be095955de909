/**
 * JetStream API, system and inbox subjects (`$JS.…`, `$KV.…`, `$SYS.…`, `_INBOX.…`): never a target for what
 * comes from outside the bridge — an ingress publish, a function's event, a dead letter being redriven.
 * The bridge's NATS user may publish to some of them (its control buckets), so it must not do so on
 * anyone's say.
 */
export const isReservedSubject = (subject: string): boolean =>
  subject.startsWith("$") || subject.startsWith("_INBOX.");

/** A subject of the dead-letter stream: only the bridge writes there. */
export const isDeadLetterSubject = (subject: string, prefix: string): boolean =>
  subject === prefix || subject.startsWith(`${prefix}.`);
