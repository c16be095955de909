import type { RouteConfig } from "./config.ts";

export type CircuitState = "closed" | "open" | "half_open";
export type CircuitPolicy = Exclude<RouteConfig["circuit_breaker"], false>;

/** A route with `circuit_breaker: false`: its circuit never opens by itself, only an operator pauses it. */
export const NO_BREAKER: CircuitPolicy = { failures: Number.POSITIVE_INFINITY, open_for: 0, max_open: 0 };

/**
 * Why a circuit opened: `failures` in a row here, a failed `probe`, or another replica's circuit having
 * opened (`elsewhere`) while this one was failing too.
 */
export type OpenCause = "failures" | "probe" | "elsewhere";

/** What the route does on each transition; called synchronously from the transition. */
export interface CircuitHooks {
  /** Stop sending and hold what is here; `pauseMs` until the probe. */
  opened(pauseMs: number, reason: string, cause: OpenCause): void;
  /** Send one probe (the oldest held message or batch). */
  halfOpened(): void;
  /** The function answers again: run what was held and go on. */
  closed(pausedMs: number): void;
  /** An operator paused the route (`jetway pause`): stop sending and hold what is here, without probes. */
  paused(reason: string): void;
  /** The operator's pause ended with the circuit closed: run what was held and go on. */
  resumed(pausedMs: number): void;
}

/**
 * A route's circuit breaker: `failures` retryable failures in a row (transport errors, 5xx, 429, RETRY)
 * mean the function or what it calls is down, so the route stops sending and holds what it has instead of
 * spending every message's max_deliver on an outage. After a pause, one probe; a failed probe doubles the
 * pause up to `max_open`. Any answer that shows the function deciding (an ack, a 4xx) closes it.
 *
 * An operator's pause (`pause()`, from `jetway pause` through control.ts) holds the same way, on every
 * replica and with or without a breaker, but sends no probe until `resume()`. A breaker that opened before
 * or during it probes as soon as it ends; one that is closed releases what was held.
 */
export class Circuit {
  private current: CircuitState = "closed";
  private streak = 0;
  private pauseMs: number;
  private openedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** After stop(): no more probes or transitions (the route is shutting down). */
  private stopped = false;
  /** The operator's reason while paused by hand. */
  private manual: string | undefined;
  private manualAt = 0;
  /** Until when another replica's open circuit makes one failure here enough (openedElsewhere). */
  private suspectUntil = 0;
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

  /** While open, probing or paused by hand, a retryable failure is held, not naked or dead-lettered. */
  get holding(): boolean {
    return this.current !== "closed" || this.manual !== undefined;
  }

  /** Why an operator paused the route; undefined when they did not. */
  get pausedBy(): string | undefined {
    return this.manual;
  }

  /** A route with a breaker (not `circuit_breaker: false`). */
  private get breaking(): boolean {
    return this.policy.failures !== Number.POSITIVE_INFINITY;
  }

  /** The function decided about a message (acked it, or refused it as bad). */
  succeeded(): void {
    this.streak = 0;
    this.suspectUntil = 0;
    if (this.current === "closed") return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.current = "closed";
    this.pauseMs = this.policy.open_for;
    // Paused by hand, what is held waits for resume() instead.
    if (this.manual === undefined) this.hooks.closed(performance.now() - this.openedAt);
  }

  /**
   * `count` messages failed in a way a retry could fix (a batch counts each of its messages). `retryMs` is
   * the delay their retry would have had (Retry-After, or the route's backoff): a pause is never shorter.
   * `lastAttempt`: the delivery count of one of them that has no attempt left, so would be dead-lettered.
   */
  failed(reason: string, count = 1, retryMs = 0, lastAttempt?: number): void {
    this.streak += count;
    if (this.current === "half_open") {
      // The probe failed: wait longer before the next one.
      this.pauseMs = Math.min(this.pauseMs * 2, this.policy.max_open);
      this.open(reason, retryMs, "probe");
    } else if (this.current === "closed" && this.streak >= this.policy.failures) {
      this.open(reason, retryMs, "failures");
    } else if (
      this.current === "closed" &&
      this.breaking &&
      lastAttempt !== undefined &&
      this.streak > lastAttempt
    ) {
      // More failures since the last answer than this message's own attempts: others fail too, so it is an
      // outage, not this message. At a low rate messages run out of attempts before `failures` is reached;
      // held, they are sent again once the function answers, instead of being dead-lettered. A message
      // failing alone (a poison message) still is.
      this.open(reason, retryMs, "failures");
    } else if (this.current === "closed" && performance.now() < this.suspectUntil) {
      this.open(reason, retryMs, "elsewhere");
    }
  }

  /**
   * Another replica's circuit for this route opened after its own failures in a row. The function is likely
   * down for this one too: if its last answer here was a failure, open now; otherwise the next failure
   * within `max_open` opens it, instead of `failures` more. An answer here first clears that, so a replica
   * the function still answers goes on. A route without a breaker ignores it.
   */
  openedElsewhere(reason: string): void {
    if (this.current !== "closed" || !this.breaking) return;
    this.suspectUntil = performance.now() + this.policy.max_open;
    if (this.streak > 0) this.open(`another replica's circuit opened: ${reason}`, 0, "elsewhere");
  }

  private open(reason: string, retryMs: number, cause: OpenCause): void {
    if (this.stopped) return;
    if (this.current === "closed") this.openedAt = performance.now();
    this.current = "open";
    this.suspectUntil = 0;
    const pauseMs = Math.min(Math.max(this.pauseMs, retryMs), this.policy.max_open);
    // Paused by hand: the probe waits for resume().
    if (this.manual === undefined) this.timer = setTimeout(this.probe, pauseMs);
    this.hooks.opened(pauseMs, reason, cause);
  }

  private readonly probe = (): void => {
    this.timer = undefined;
    this.current = "half_open";
    this.hooks.halfOpened();
  };

  /** An operator's pause: hold everything, probe nothing, until resume(). Again while paused: a new reason. */
  pause(reason: string): void {
    if (this.stopped) return;
    const first = this.manual === undefined;
    this.manual = reason;
    if (!first) return;
    this.manualAt = performance.now();
    clearTimeout(this.timer);
    this.timer = undefined;
    this.hooks.paused(reason);
  }

  /** Ends an operator's pause: releases what was held, or probes at once if the breaker is open. */
  resume(): void {
    if (this.manual === undefined) return;
    this.manual = undefined;
    if (this.stopped) return;
    if (this.current === "closed") this.hooks.resumed(performance.now() - this.manualAt);
    else if (this.current === "open") this.probe();
    // half_open: the probe sent before the pause is still out; its answer decides.
  }

  /** Cancels a pending probe and any later one (shutdown). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
