import type { JsMsg } from "@nats-io/jetstream";
import type pino from "pino";
import type { AckTicker, Tickable } from "./ack-ticker.ts";
import { decideBatch, encodeBatch } from "./batch.ts";
import type { Circuit } from "./circuit.ts";
import type { RouteConfig } from "./config.ts";
import type { BridgeEvents, Delivery, OutcomeKind } from "./events.ts";
import { Fifo } from "./fifo.ts";
import { IdleGate } from "./idle-gate.ts";
import type { Invocation, Invoker } from "./invoker.ts";
import { backoffDelay, beyondMaxDeliver, type Outcome, retryableFailure, retryDelay } from "./outcome.ts";
import type { RatePacer } from "./rate-limit.ts";
import { deliveryOf, type SettleContext, type Settler } from "./settle.ts";

export interface BatchDispatcherOptions {
  route: RouteConfig & { batch: NonNullable<RouteConfig["batch"]> };
  invoker: Invoker;
  settler: Settler;
  ticker: AckTicker;
  events: BridgeEvents;
  /** Scoped to the route. */
  log: pino.Logger;
  /** Delay of the nak that hands messages back at shutdown. */
  shutdownNakMs: number;
  /** The route's circuit breaker, when it has one: told each batch's result; while open, nothing is sent. */
  circuit?: Circuit | undefined;
  /** The route's `rate_limit`, when it has one: a batch goes when its messages may (its wake calls wake()). */
  pacer?: RatePacer | undefined;
}

type SettledKind = OutcomeKind | undefined;
type Settling = SettledKind | Promise<SettledKind>;
const isPromise = (s: Settling): s is Promise<SettledKind> => s instanceof Promise;

/** One message of a batch route, from arrival to settlement; ticked (working()) the whole time. */
class Entry implements Tickable {
  msg: JsMsg;
  d: Delivery;
  touchedAt: number;
  abandoned = false;
  settled = false;
  /** Failed while the circuit was open: kept for the probe instead of settled. */
  held = false;
  constructor(msg: JsMsg, d: Delivery) {
    this.msg = msg;
    this.d = d;
    this.touchedAt = d.startedAt;
  }
}

/**
 * Groups a batch route's messages into batches of up to `batch.size` (or whatever arrived within
 * `batch.max_wait` of the oldest waiting one) and delivers each in one POST, with at most
 * `route.concurrency` batches in flight. One timer for the waiting batch, none per message.
 */
export class BatchDispatcher {
  private readonly o: BatchDispatcherOptions;
  private readonly size: number;
  private pending = new Fifo<Entry>();
  /** Messages of failed batches kept while the circuit is open, oldest first; each stays on the ticker. */
  private held = new Fifo<Entry>();
  private readonly running = new Set<Entry[]>();
  private runningMessages = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The oldest waiting message has waited max_wait: send what there is as soon as a slot is free. */
  private due = false;
  private stopping = false;
  private readonly idle = new IdleGate();

  constructor(options: BatchDispatcherOptions) {
    this.o = options;
    this.size = options.route.batch.size;
  }

  /** Messages in batches being delivered or settled. */
  get inFlight(): number {
    return this.runningMessages;
  }

  /** Messages kept for a probe while the circuit is open (failed ones, and those that never left). */
  get heldCount(): number {
    return this.o.circuit?.holding ? this.waiting : 0;
  }

  /** Messages waiting for their batch to fill or go (a free slot, the rate limit); 0 while paused (held). */
  get queued(): number {
    return this.o.circuit?.holding ? 0 : this.pending.length;
  }

  /** Messages not in a batch in flight: held after failing, or not sent yet. */
  get waiting(): number {
    return this.held.length + this.pending.length;
  }

  push(msg: JsMsg): void {
    const entry = new Entry(msg, deliveryOf(msg, this.o.route.name, performance.now()));
    this.pending.push(entry);
    // Waiting for a free slot counts against ack_wait too: keep it alive from the start.
    this.o.ticker.add(entry);
    if (this.pending.length >= this.size) this.dispatch();
    else this.arm();
  }

  /** Starts the max_wait clock for the oldest waiting message, unless it runs or already ran out. */
  private arm(): void {
    if (this.timer === undefined && !this.due) {
      this.timer = setTimeout(this.expire, this.o.route.batch.max_wait);
    }
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    this.due = true;
    this.dispatch();
  };

  /** The rate limit allows more now. */
  wake(): void {
    this.dispatch();
  }

  private dispatch(): void {
    if (this.o.circuit?.holding) {
      // Paused: what waits stays (ticked) for the probe or the close; no max_wait clock meanwhile.
      clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    const { pacer } = this.o;
    while (
      !this.stopping &&
      this.running.size < this.o.route.concurrency &&
      this.pending.length > 0 &&
      (this.due || this.pending.length >= this.size) &&
      // Counted as a full take; one cut short by a repeated id pays a little ahead.
      (pacer === undefined || pacer.take(Math.min(this.size, this.pending.length)))
    ) {
      void this.run(this.take());
    }
    if (this.pending.length === 0) {
      this.due = false;
      clearTimeout(this.timer);
      this.timer = undefined;
    } else if (!this.stopping) this.arm();
  }

  /** Up to `size` waiting messages; stops early rather than put one id in a batch twice. */
  private take(): Entry[] {
    const batch: Entry[] = [];
    const ids = new Set<string>();
    for (let next = this.pending.peek(); next && batch.length < this.size; next = this.pending.peek()) {
      if (ids.has(next.d.id)) break;
      ids.add(next.d.id);
      batch.push(this.pending.shift() as Entry);
    }
    return batch;
  }

  /**
   * Sends the oldest held message, alone, as the circuit's probe (a whole batch would be a burst against a
   * dependency that may be throttling); false when nothing waits.
   */
  probe(): boolean {
    const first = this.held.shift() ?? this.pending.shift();
    if (!first) return false;
    first.held = false;
    this.o.pacer?.spend(1);
    void this.run([first]);
    return true;
  }

  /** The circuit closed: the held messages go first, then what arrived meanwhile. */
  release(): void {
    const arrived = this.pending;
    this.pending = new Fifo<Entry>();
    for (let e = this.held.shift(); e; e = this.held.shift()) {
      e.held = false;
      this.pending.push(e);
    }
    for (let e = arrived.shift(); e; e = arrived.shift()) this.pending.push(e);
    this.due = this.pending.length > 0;
    this.dispatch();
  }

  private async run(batch: Entry[]): Promise<void> {
    this.running.add(batch);
    this.runningMessages += batch.length;
    try {
      await this.deliver(batch);
    } catch (error) {
      // A bug, not an outcome: hand the unsettled messages back with a delay and keep consuming.
      this.o.events.emit("consumer:error", { route: this.o.route.name, error: error as Error });
      this.o.log.error({ err: error, size: batch.length }, "unexpected error handling a batch");
      for (const e of batch) {
        if (!e.abandoned && !e.settled) e.msg.nak(backoffDelay(e.d.delivery, this.o.route));
      }
    } finally {
      this.running.delete(batch);
      this.runningMessages -= batch.length;
      for (const e of batch) if (!e.held) this.o.ticker.delete(e);
      this.dispatch();
      if (this.running.size === 0) this.idle.notify();
    }
  }

  private async deliver(batch: Entry[]): Promise<void> {
    const settling: Settling[] = [];
    const send: Entry[] = [];
    for (const e of batch) {
      this.o.events.emit("invoke:start", e.d);
      const beyond = beyondMaxDeliver(e.d.delivery, this.o.route);
      if (beyond) settling.push(this.settle(e, beyond));
      else send.push(e);
    }
    let inv: Invocation | undefined;
    let held = 0;
    const sentAt = performance.now();
    if (send.length > 0) {
      inv = await this.o.invoker.invokeBatch(encodeBatch(send, this.o.route));
      this.o.events.emit("batch:delivered", {
        route: this.o.route.name,
        size: send.length,
        status: inv.status,
        durationMs: performance.now() - sentAt,
      });
      const outcomes = decideBatch(
        inv,
        send.map((e) => e.d),
        this.o.route,
      );
      // A stopping route hands failures back (settled as retries) rather than holding them.
      if (this.o.circuit && !this.stopping) held = this.holdFailures(send, outcomes, this.o.circuit, inv);
      // A 2xx answer speaks per message (the reason says it all); otherwise the response is the excerpt.
      const context: SettleContext =
        inv.status !== undefined && inv.status < 300 ? { status: inv.status } : inv;
      for (let i = 0; i < send.length; i++) {
        const e = send[i] as Entry;
        if (!e.abandoned && !e.held) settling.push(this.settle(e, outcomes[i] as Outcome, context));
      }
    }
    // Most messages settle synchronously; wait only when some had events or a dead letter to store first.
    const kinds = settling.some(isPromise) ? await Promise.all(settling) : (settling as SettledKind[]);
    if (!this.o.log.isLevelEnabled("info")) return;
    const count = (kind: OutcomeKind) => kinds.reduce((n, k) => (k === kind ? n + 1 : n), 0);
    this.o.log.info(
      {
        size: batch.length,
        status: inv?.status,
        acked: count("ack"),
        retried: count("retry"),
        dead_lettered: count("dead_letter"),
        held,
        duration_ms: Math.round((performance.now() - sentAt) * 10) / 10,
      },
      "batch settled",
    );
  }

  /**
   * Tells the circuit how the batch went: any message the function decided about shows it is up, otherwise
   * each retryable failure counts. While the circuit is open the failed messages are held, not settled.
   * Returns how many were held.
   */
  private holdFailures(send: Entry[], outcomes: Outcome[], circuit: Circuit, inv: Invocation): number {
    let failed = 0;
    let reason = "";
    let retryMs = 0;
    let lastAttempt: number | undefined;
    for (const [i, outcome] of outcomes.entries()) {
      if (!retryableFailure(outcome)) {
        circuit.succeeded();
        return 0;
      }
      if (failed++ === 0) reason = outcome.reason;
      retryMs = Math.max(retryMs, retryDelay(outcome));
      if (outcome.kind === "dead_letter") lastAttempt = Math.max(lastAttempt ?? 0, send[i]?.d.delivery ?? 0);
    }
    if (failed === 0) return 0;
    circuit.failed(reason, failed, retryMs, lastAttempt);
    if (!circuit.holding) return 0;
    let held = 0;
    for (let i = 0; i < send.length; i++) {
      const e = send[i] as Entry;
      if (e.abandoned) continue;
      e.held = true;
      held++;
      this.held.push(e);
      const outcome = outcomes[i];
      if (outcome && outcome.kind !== "ack") this.o.settler.held(e.d, outcome.reason, inv);
    }
    return held;
  }

  private settle(e: Entry, outcome: Outcome, inv?: Invocation): Settling {
    const kind = this.o.settler.settle(e, e.d, outcome, inv);
    if (isPromise(kind)) {
      return kind.then((settled) => {
        e.settled = true;
        return settled;
      });
    }
    e.settled = true;
    return kind;
  }

  /** Hands back what never left, waits up to `gracePeriodMs` for batches in flight, then hands back the rest. */
  async stop(gracePeriodMs: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiting of [this.pending, this.held]) {
      for (let e = waiting.shift(); e; e = waiting.shift()) {
        this.o.ticker.delete(e);
        e.msg.nak(this.o.shutdownNakMs);
      }
    }
    if (this.running.size > 0) await this.idle.wait(gracePeriodMs);
    let abandoned = 0;
    for (const batch of this.running) {
      for (const e of batch) {
        if (e.settled) continue;
        e.abandoned = true;
        e.msg.nak(this.o.shutdownNakMs);
        abandoned++;
      }
    }
    if (abandoned > 0) this.o.log.warn({ abandoned }, "grace period over, handed back");
  }
}
