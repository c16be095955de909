import { z } from "zod";
import { MAX_TIMER_MS, parseDuration } from "./duration.ts";

/** A route's `rate_limit`: at most `messages` every `perMs`, shared by the bridge replicas consuming it. */
export interface RateLimit {
  messages: number;
  perMs: number;
}

/** Messages per second at `limit` (the route's whole rate, before replicas share it). */
export const perSecondOf = (limit: RateLimit): number => (limit.messages * 1_000) / limit.perMs;

const RATE = /^(\d+(?:\.\d+)?)\s*\/\s*(\S+)$/;

/** Parses "200/s", "1000/m", "5/10s", "1/h", or a number of messages per second. */
export function parseRate(value: string | number): RateLimit | undefined {
  if (typeof value === "number") {
    return value > 0 && Number.isFinite(value) ? { messages: value, perMs: 1_000 } : undefined;
  }
  const match = RATE.exec(value.trim());
  if (!match) return undefined;
  const messages = Number(match[1]);
  const unit = match[2] as string;
  // "/s" is "/1s".
  const perMs = parseDuration(/^\d/.test(unit) ? unit : `1${unit}`);
  return messages > 0 && perMs ? { messages, perMs } : undefined;
}

/** A zod field accepting a rate string or messages per second, yielding a RateLimit. */
export const rate = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const limit = parseRate(value);
  if (limit === undefined) {
    ctx.addIssue({
      code: "custom",
      message: `invalid rate ${JSON.stringify(value)}: use e.g. 200/s, 1000/m, 5/10s (more than 0 messages per duration)`,
    });
    return z.NEVER;
  }
  return limit;
});

/** The largest burst, as time at the replica's pace: what arrives after a quiet spell goes out at once up to it. */
const BURST_MS = 100;

/**
 * Paces a route's deliveries to this replica's share of its `rate_limit` (the generic cell rate algorithm: one
 * number to keep).
 * A quiet route may send a burst of up to a tenth of a second's worth at once (at least one message);
 * beyond that, messages go out evenly spaced. A batch larger than the burst goes when nothing is owed, and
 * its size is then paid off before the next: the average holds for any batch size. One timer at most.
 */
export class RatePacer {
  private readonly limit: RateLimit;
  /** Milliseconds per message at this replica's share of the limit. */
  private interval: number;
  private burst: number;
  /** When the messages sent so far would have finished going out at this replica's pace (performance.now()). */
  private paidUntil = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private readonly wake: () => void;

  /** `wake` runs when messages refused by take() may go. */
  constructor(limit: RateLimit, wake: () => void) {
    this.limit = limit;
    this.interval = limit.perMs / limit.messages;
    this.burst = Math.max(1, Math.floor(BURST_MS / this.interval));
    this.wake = wake;
  }

  /** Messages per second this replica may send. */
  get perSecond(): number {
    return 1_000 / this.interval;
  }

  /** Takes a `1 / replicas` share of the limit (presence.ts counts them). */
  share(replicas: number, now = performance.now()): void {
    const interval = (this.limit.perMs * Math.max(1, replicas)) / this.limit.messages;
    // What is owed is owed at the new pace: messages sent at the old one are paid off as fast as it allows.
    if (this.paidUntil > now) this.paidUntil = now + ((this.paidUntil - now) * interval) / this.interval;
    this.interval = interval;
    this.burst = Math.max(1, Math.floor(BURST_MS / interval));
    // A wait timed at the old pace may now be too long, or too short: the caller asks again.
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.fire();
    }
  }

  /** Milliseconds before `count` messages may go (0: now). */
  delay(count: number, now: number): number {
    const owedMs = Math.max(this.paidUntil, now) - now;
    const allowanceMs = (Math.max(this.burst, count) - count) * this.interval;
    return owedMs <= allowanceMs ? 0 : owedMs - allowanceMs;
  }

  /** Counts `count` messages as sent: for those that go whatever the limit says (a circuit's probe). */
  spend(count: number, now = performance.now()): void {
    this.paidUntil = Math.max(this.paidUntil, now) + count * this.interval;
  }

  /** True when `count` messages may go now, and counts them; false when not yet, and wakes the caller then. */
  take(count: number, now = performance.now()): boolean {
    const wait = this.delay(count, now);
    if (wait === 0) {
      this.spend(count, now);
      return true;
    }
    // A longer delay than setTimeout takes (~24.8 days, a tiny share of a slow limit) would fire at once;
    // the caller asks again when it wakes.
    this.timer ??= setTimeout(this.fire, Math.min(Math.ceil(wait), MAX_TIMER_MS));
    return false;
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.wake();
  };

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
