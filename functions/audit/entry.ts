/** One audited event: what the log stores, one object per stream message. */
export interface AuditEntry {
  subject: string;
  /** CloudEvent id (the message's Nats-Msg-Id). */
  id: string;
  stream: string;
  seq: number;
  /** When the event was published (CloudEvent time), else the payload's occurred_at. */
  time: string;
  data: unknown;
}

/** Wide enough for any JetStream sequence (uint64 fits in 20 digits), so keys sort like sequences. */
const SEQ_WIDTH = 20;

/** `<stream>/<seq zero-padded>.json`: a redelivery maps to the same key, listing returns stream order. */
export const entryKey = (stream: string, seq: number): string =>
  `${stream}/${String(seq).padStart(SEQ_WIDTH, "0")}.json`;

/** Serialised with a fixed field order, so the same message always produces byte-identical content. */
export const serializeEntry = (e: AuditEntry): string =>
  `${JSON.stringify({ subject: e.subject, id: e.id, stream: e.stream, seq: e.seq, time: e.time, data: e.data })}\n`;

/** Where the log lives: a local directory, or an S3-compatible bucket. */
export interface ObjectStore {
  /** Writes `body` unless `key` exists; true when this call wrote it. */
  putIfAbsent(key: string, body: string): Promise<boolean>;
  get(key: string): Promise<string | undefined>;
  /** Every key under `prefix`, in lexical order. */
  list(prefix?: string): Promise<string[]>;
}

/** Storage failed; the delivery should be retried. */
export class AuditStoreError extends Error {
  override name = "AuditStoreError";
  readonly status: number | undefined;
  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
}
