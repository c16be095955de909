import type { JetStreamClient } from "@nats-io/jetstream";
import { BENCH_SUBJECT } from "./config.ts";
import { nowNs, pingBody } from "./protocol.ts";

/** Publish times by stream sequence (from each PubAck), for publish→ack latency. */
export type PublishTimes = Map<number, number>;

/**
 * Publishes `n` stamped messages as fast as JetStream acknowledges them, keeping `window` publishes in
 * flight. Records publish times by sequence when `times` is given.
 */
export function publishBurst(
  js: JetStreamClient,
  n: number,
  times?: PublishTimes,
  window = 1_024,
  subject = BENCH_SUBJECT,
): Promise<void> {
  if (n <= 0) return Promise.resolve();
  let sent = 0;
  let acked = 0;
  return new Promise((resolve, reject) => {
    const pump = () => {
      while (sent - acked < window && sent < n) {
        sent++;
        const t = nowNs();
        js.publish(subject, pingBody(t)).then((ack) => {
          times?.set(ack.seq, t);
          if (++acked === n) resolve();
          else pump();
        }, reject);
      }
    };
    pump();
  });
}

/** Publishes at a steady `rate` per second for `seconds`, one message at a time on a 1 ms tick. */
export async function publishPaced(
  js: JetStreamClient,
  rate: number,
  seconds: number,
  times: PublishTimes,
): Promise<void> {
  const total = Math.round(rate * seconds);
  const start = performance.now();
  const pending: Promise<unknown>[] = [];
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
    for (; sent < due; sent++) {
      const t = nowNs();
      pending.push(js.publish(BENCH_SUBJECT, pingBody(t)).then((ack) => times.set(ack.seq, t)));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
}
