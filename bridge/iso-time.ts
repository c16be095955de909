import type { JsMsg } from "@nats-io/jetstream";

/**
 * `new Date(ms).toISOString()`, remembered for the last millisecond asked: per-message timestamps (a
 * log line's `time`, a delivery's `ce-time`) mostly repeat the previous one under load. Each caller keeps
 * its own, so two clocks never evict each other.
 */
export function isoTimeCache(): (ms: number) => string {
  let lastMs = Number.NaN;
  let last = "";
  return (ms) => {
    if (ms !== lastMs) {
      lastMs = ms;
      last = new Date(ms).toISOString();
    }
    return last;
  };
}

const messageTime = isoTimeCache();

/** A message's `ce-time`: its stream timestamp as `JsMsg.timestamp` gives it (ISO, milliseconds), from the
 * info's nanos and cached per millisecond. */
export const ceTime = (msg: JsMsg): string => messageTime(Math.floor(msg.info.timestampNanos / 1_000_000));
