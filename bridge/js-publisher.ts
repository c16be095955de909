import {
  JetStreamApiError,
  type JetStreamClient,
  JetStreamError,
  type JetStreamPublishOptions,
  type PubAck,
} from "@nats-io/jetstream";
import {
  createInbox,
  errors,
  type Msg,
  type NatsConnection,
  headers as natsHeaders,
  type Payload,
  type Subscription,
} from "@nats-io/nats-core";

/** What storing a message needs: JetStream's publish, and its manager to tell "no stream" from an outage. */
export type MessageStore = Pick<JetStreamClient, "publish" | "jetstreamManager">;

/** The options the fast path serves; any other one goes to nats.js's own publish. */
const FAST_OPTIONS = new Set(["msgID", "headers", "timeout"]);
/** How often pending publishes are checked for their timeout: a timeout fires up to this much late. */
const SWEEP_MS = 100;
const decoder = new TextDecoder();

interface Pending {
  subject: string;
  deadline: number;
  resolve: (ack: PubAck) => void;
  reject: (error: Error) => void;
}

/**
 * JetStream publishes whose PubAcks all arrive on one reply subscription of this publisher's own.
 * nats.js's `js.publish` makes every publish a request, and each request it resolves also builds and
 * discards a `RequestError("cancelled")` with its stack trace, besides a timer and a `Promise.race`: with
 * one event per message the bridge spent 1.4–1.7× the CPU it does with this (bench/README finding 13).
 * The answers are nats.js's: the PubAck; a `JetStreamApiError` for the server's refusal; a `RequestError`
 * caused by `NoRespondersError` when no stream binds the subject; a `TimeoutError`; a publish permission
 * violation for that subject; and once the reply subscription has ended, why (the connection closed, or the
 * server refused it).
 * Options other than msgID, headers and timeout are passed to `js.publish` as they are.
 */
export class JetStreamPublisher implements MessageStore {
  private readonly nc: NatsConnection;
  private readonly js: JetStreamClient;
  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private sweeper: NodeJS.Timeout | undefined;
  /** Why the reply subscription ended (the connection closed, or the server refused the subscription). */
  private closedWith: Error | undefined;

  constructor(nc: NatsConnection, js: JetStreamClient) {
    this.nc = nc;
    this.js = js;
    const inboxPrefix = (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    const inbox = createInbox(inboxPrefix);
    this.prefix = `${inbox}.`;
    this.sub = nc.subscribe(`${inbox}.*`, { callback: (error, msg) => this.onReply(error, msg) });
    void this.watchPermissions();
    void this.sub.closed.then((reason) => {
      this.closedWith = reason instanceof Error ? reason : new errors.ClosedConnectionError();
      this.failAll(this.closedWith);
    });
  }

  publish(subject: string, payload?: Payload, options?: Partial<JetStreamPublishOptions>): Promise<PubAck> {
    for (const key in options) {
      if (!FAST_OPTIONS.has(key)) return this.js.publish(subject, payload, options);
    }
    let headers = options?.headers;
    if (options?.msgID) {
      headers ??= natsHeaders();
      headers.set("Nats-Msg-Id", options.msgID);
    }
    const token = (this.next++).toString(36);
    const timeout = options?.timeout ?? 5_000;
    return new Promise<PubAck>((resolve, reject) => {
      if (this.closedWith) {
        reject(this.closedWith);
        return;
      }
      this.pending.set(token, { subject, deadline: performance.now() + timeout, resolve, reject });
      try {
        this.nc.publish(subject, payload, { reply: this.prefix + token, headers });
      } catch (error) {
        // Refused before sending: too large for max_payload, a closed or draining connection.
        this.pending.delete(token);
        reject(error as Error);
        return;
      }
      this.sweeper ??= setTimeout(this.sweep, SWEEP_MS);
    });
  }

  jetstreamManager(checkAPI?: boolean) {
    return this.js.jetstreamManager(checkAPI);
  }

  /** Publishes still waiting for their PubAck. */
  get inFlight(): number {
    return this.pending.size;
  }

  private onReply(error: Error | null, msg: Msg): void {
    if (error) return;
    const token = msg.subject.slice(this.prefix.length);
    const entry = this.pending.get(token);
    if (!entry) return; // a PubAck that arrived after its publish timed out
    this.pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      const cause = new errors.NoRespondersError(entry.subject);
      entry.reject(new errors.RequestError(cause.message, { cause }));
      return;
    }
    try {
      const answer = JSON.parse(decoder.decode(msg.data)) as Partial<PubAck> & {
        error?: ConstructorParameters<typeof JetStreamApiError>[0];
      };
      if (answer.error) throw new JetStreamApiError(answer.error);
      if (!answer.stream) throw new JetStreamError("invalid ack response");
      const ack: PubAck = {
        stream: answer.stream,
        seq: answer.seq ?? 0,
        duplicate: answer.duplicate === true,
      };
      if (answer.domain) ack.domain = answer.domain;
      entry.resolve(ack);
    } catch (failure) {
      entry.reject(failure as Error);
    }
  }

  private readonly sweep = (): void => {
    this.sweeper = undefined;
    const now = performance.now();
    for (const [token, entry] of this.pending) {
      if (entry.deadline > now) continue;
      this.pending.delete(token);
      entry.reject(new errors.TimeoutError());
    }
    if (this.pending.size > 0) this.sweeper = setTimeout(this.sweep, SWEEP_MS);
  };

  /** The server refuses a publish with an async -ERR, not on the reply subject: fail that subject's waiters. */
  private async watchPermissions(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type !== "error") continue;
      const error = status.error;
      if (!(error instanceof errors.PermissionViolationError) || error.operation !== "publish") continue;
      for (const [token, entry] of this.pending) {
        if (entry.subject !== error.subject) continue;
        this.pending.delete(token);
        entry.reject(error);
      }
    }
  }

  private failAll(error: Error): void {
    clearTimeout(this.sweeper);
    this.sweeper = undefined;
    for (const entry of this.pending.values()) entry.reject(error);
    this.pending.clear();
  }
}
