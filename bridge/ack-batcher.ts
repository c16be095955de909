import type { JsMsg } from "@nats-io/jetstream";

const ACK = 0;
const NAK = 1;
const TERM = 2;

/**
 * Collects ack / nak / term calls and sends them together once per event-loop turn.
 * nats.js flushes its outbound buffer in a microtask, so acks issued from separate HTTP responses each
 * cost a socket write; grouping them into one synchronous burst turns N writes into one.
 */
export class AckBatcher {
  private msgs: JsMsg[] = [];
  private kinds: number[] = [];
  private args: (number | string | undefined)[] = [];
  private scheduled = false;
  private readonly run = () => this.flush();

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
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  /** Sends everything queued now (also called on stop, so nothing is left unsent). */
  flush(): void {
    this.scheduled = false;
    const { msgs, kinds, args } = this;
    if (msgs.length === 0) return;
    this.msgs = [];
    this.kinds = [];
    this.args = [];
    for (let i = 0; i < msgs.length; i++) {
      const msg = msgs[i] as JsMsg;
      const kind = kinds[i];
      if (kind === ACK) msg.ack();
      else if (kind === NAK) msg.nak(args[i] as number);
      else if (args[i]) msg.term(args[i] as string);
      else msg.term();
    }
  }
}
