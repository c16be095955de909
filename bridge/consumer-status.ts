/**
 * Consumer notifications worth a log line and a count in jetway_consumer_notifications_total; the rest
 * (a pull's `next`, `heartbeat`, `discard`, `debug`) are routine bookkeeping, one or more per pull.
 */
export const NOTABLE_STATUS: ReadonlySet<string> = new Set([
  "heartbeats_missed",
  "consumer_deleted",
  "consumer_not_found",
  "stream_not_found",
  "no_responders",
  "exceeded_limits",
]);
