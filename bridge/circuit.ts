import type { RouteConfig } from "./config.ts";

export type CircuitState = "closed" | "open" | "half_open";
export type CircuitPolicy = Exclude<RouteConfig["circuit_breaker"], false>;

/** What the route does on each transition; called synchronously from the transition. */
export interface CircuitHooks {
  /** Stop sending and hold what is here; `pauseMs` until the probe. */
  opened(pauseMs: number, reason: string): void;
  /** Send one probe (the oldest held message or batch). */
  halfOpened(): void;
  /** The function answers again: run what was held and go on. */
  closed(pausedMs: number): void;
}

/**
 * A route's circuit breaker: `failures` retryable failures in a row (transport errors, 5xx, 429, RETRY)
 * mean the function or what it calls is down, so the route stops sending and holds what it has instead of
 * spending every message's max_deliver on an outage. After a pause, one probe; a failed probe doubles the
 * pause up to `max_open`. Any answer that shows the function deciding (an ack, a 4xx) closes it.
 */
export class Circuit {
  private current: CircuitState = "closed";
  private streak = 0;
  private pauseMs: number;
  private openedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** After stop(): no more probes or transitions (the route is shutting down). */
  private stopped = false;
  private readonly policy: CircuitPolicy;
  private readonly hooks: CircuitHooks;

  constructor(policy: CircuitPolicy, hooks: CircuitHooks) {
    this.policy = policy;
    this.hooks = hooks;
    this.pauseMs = policy.open_for;
  }

  get state(): CircuitState {
    return this.current;
  }

  /** While open or probing, a retryable failure is held, not naked or dead-lettered. */
  get holding(): boolean {
    return this.current !== "closed";
  }

  /** The function decided about a message (acked it, or refused it as bad). */
  succeeded(): void {
    this.streak = 0;
    if (this.current === "closed") return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.current = "closed";
    this.pauseMs = this.policy.open_for;
    this.hooks.closed(performance.now() - this.openedAt);
  }

  /**
   * `count` messages failed in a way a retry could fix (a batch counts each of its messages). `retryMs` is
   * the delay their retry would have had (Retry-After, or the route's backoff): a pause is never shorter.
   */
  failed(reason: string, count = 1, retryMs = 0): void {
    this.streak += count;
    if (this.current === "half_open") {
      // The probe failed: wait longer before the next one.
      this.pauseMs = Math.min(this.pauseMs * 2, this.policy.max_open);
      this.open(reason, retryMs);
    } else if (this.current === "closed" && this.streak >= this.policy.failures) {
      this.openedAt = performance.now();
      this.open(reason, retryMs);
    }
  }

  private open(reason: string, retryMs: number): void {
    if (this.stopped) return;
    this.current = "open";
    const pauseMs = Math.min(Math.max(this.pauseMs, retryMs), this.policy.max_open);
    this.timer = setTimeout(this.probe, pauseMs);
    this.hooks.opened(pauseMs, reason);
  }

  private readonly probe = (): void => {
    this.timer = undefined;
    this.current = "half_open";
    this.hooks.halfOpened();
  };

  /** Cancels a pending probe and any later one (shutdown). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
