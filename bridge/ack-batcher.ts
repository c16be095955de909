import type { JsMsg } from "@nats-io/jetstream";

const ACK = 0;
const NAK = 1;
const TERM = 2;

/**
 * Collects ack / nak / term calls and sends them together. nats.js flushes its outbound buffer in a
 * microtask, so acks issued from separate HTTP responses would each cost a socket write — and wake
 * nats-server once each. A burst is sent at the end of the event-loop turn, but not sooner than about
 * `minGapMs` after the previous one: at low rates every ack still leaves in the turn it was made, at high
 * rates each write carries a millisecond's worth of acks instead of a turn's.
 */
export class AckBatcher {
  private msgs: JsMsg[] = [];
  private kinds: number[] = [];
  private args: (number | string | undefined)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private lastFlush = Number.NEGATIVE_INFINITY;
  private readonly minGapMs: number;
  private readonly onError: ((error: unknown, unsent: number) => void) | undefined;
  private readonly run = () => this.flush();

  /**
   * minGapMs: the least time between two bursts; 0 sends every turn's acks at the end of the turn.
   * onError: told when some could not be handed to the client (a throw from ack/nak/term); the server
   * redelivers those messages after ack_wait, so nothing is lost, but it is worth a log line.
   */
  constructor(minGapMs = 1, onError?: (error: unknown, unsent: number) => void) {
    this.minGapMs = minGapMs;
    this.onError = onError;
  }

  get pending(): number {
    return this.msgs.length;
  }

  ack(msg: JsMsg): void {
    this.push(msg, ACK, undefined);
  }

  /** delayMs must be ≥ 1: a nak without delay is redelivered at once on 2.9. */
  nak(msg: JsMsg, delayMs: number): void {
    this.push(msg, NAK, Math.max(1, Math.round(delayMs)));
  }

  term(msg: JsMsg, reason?: string): void {
    this.push(msg, TERM, reason);
  }

  private push(msg: JsMsg, kind: number, arg: number | string | undefined): void {
    this.msgs.push(msg);
    this.kinds.push(kind);
    this.args.push(arg);
    if (this.timer !== undefined || this.immediate !== undefined) return;
    const wait = this.lastFlush + this.minGapMs - performance.now();
    if (wait > 0) this.timer = setTimeout(this.run, wait);
    else this.immediate = setImmediate(this.run);
  }

  /** Sends everything queued now (also called on stop, so nothing is left unsent). */
  flush(): void {
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    const { msgs, kinds, args } = this;
    if (msgs.length === 0) return;
    this.lastFlush = performance.now();
    this.msgs = [];
    this.kinds = [];
    this.args = [];
    let unsent = 0;
    let firstError: unknown;
    for (let i = 0; i < msgs.length; i++) {
      const msg = msgs[i] as JsMsg;
      const kind = kinds[i];
      try {
        if (kind === ACK) msg.ack();
        else if (kind === NAK) msg.nak(args[i] as number);
        else if (args[i]) msg.term(args[i] as string);
        else msg.term();
      } catch (error) {
        // This runs from a timer, where a throw would end the process; one failure must not hold the rest.
        unsent++;
        firstError ??= error;
      }
    }
    if (unsent > 0) this.onError?.(firstError, unsent);
  }
}
