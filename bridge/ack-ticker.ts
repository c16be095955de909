import type { JsMsg } from "@nats-io/jetstream";

/** An in-flight message the ticker keeps alive; the consumer's per-message record implements it. */
export interface Tickable {
  msg: JsMsg;
  /** performance.now() when the message was taken or last reported as still being worked on. */
  touchedAt: number;
}

/**
 * Sends `working()` (+WPI) for requests still running at half the ack_wait, so a slow function does not
 * get its message redelivered under it. One interval scanning a Set serves every in-flight message:
 * no timer per message.
 */
export class AckTicker {
  private readonly entries = new Set<Tickable>();
  private readonly thresholdMs: number;
  private readonly timer: NodeJS.Timeout;

  constructor(ackWaitMs: number) {
    this.thresholdMs = Math.max(1, Math.floor(ackWaitMs / 2));
    this.timer = setInterval(() => this.tick(), Math.max(10, Math.floor(ackWaitMs / 4)));
    this.timer.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  add(entry: Tickable): void {
    this.entries.add(entry);
  }

  delete(entry: Tickable): void {
    this.entries.delete(entry);
  }

  /** Marks every entry due as working; exposed for tests. */
  tick(now = performance.now()): number {
    let sent = 0;
    for (const entry of this.entries) {
      if (now - entry.touchedAt < this.thresholdMs) continue;
      entry.msg.working();
      entry.touchedAt = now;
      sent++;
    }
    return sent;
  }

  stop(): void {
    clearInterval(this.timer);
    this.entries.clear();
  }
}
