import type { z } from "zod";
import type { EventData, EventType } from "../../schemas/define.ts";
import { HEADERS } from "./contract.ts";
import type { HeaderReader } from "./request-headers.ts";
import type { EventMeta } from "./types.ts";

/** A delivery the function cannot even read (status 400/422); `code` goes into the error body. */
export class DeliveryError extends Error {
  override name = "DeliveryError";
  readonly status: 400 | 422;
  readonly code: string;
  constructor(status: 400 | 422, code: string, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.status = status;
    this.code = code;
  }
}

function int(value: unknown, fallback: number): number;
function int(value: unknown, fallback: undefined): number | undefined;
function int(value: unknown, fallback: number | undefined): number | undefined {
  if (value === undefined || value === null || value === "") return fallback;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : fallback;
}

const str = (value: unknown): string | undefined => (typeof value === "string" && value ? value : undefined);
/** Fatal on bytes that are not UTF-8: replaced by U+FFFD, a payload would be handled as it was never sent. */
export const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Binary-mode CloudEvent: attributes in `ce-*` / `x-jetway-*` headers, data in the body. */
export function metaFromHeaders(header: HeaderReader): EventMeta {
  const id = header(HEADERS.ceId);
  const subject = header(HEADERS.ceType);
  if (!subject) throw new DeliveryError(400, "bad_request", `missing ${HEADERS.ceType} header`);
  if (!id) throw new DeliveryError(400, "bad_request", `missing ${HEADERS.ceId} header`);
  return {
    id,
    subject,
    route: str(header(HEADERS.route)),
    stream: header(HEADERS.stream) ?? "",
    seq: int(header(HEADERS.seq), 0),
    delivery: int(header(HEADERS.delivery), 1),
    maxDeliver: int(header(HEADERS.maxDeliver), undefined),
    time: str(header(HEADERS.ceTime)),
    traceparent: str(header(HEADERS.traceparent)),
  };
}

/** One structured-mode CloudEvent of a batch, after its attributes were read. */
export type BatchItem =
  | { ok: true; meta: EventMeta; data: unknown }
  | { ok: false; id: string; meta: EventMeta; reason: string };

/**
 * Reads one element of a batch body. Only a missing `id` fails the whole batch (the failure could not be
 * reported against a message); every other defect becomes a per-message failure.
 */
export function readBatchItem(raw: unknown, index: number): BatchItem {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new DeliveryError(400, "bad_request", `batch element ${index} is not an object`);
  }
  const ce = raw as Record<string, unknown>;
  const id = str(ce.id);
  if (!id) throw new DeliveryError(400, "bad_request", `batch element ${index} has no id`);
  const meta: EventMeta = {
    id,
    subject: str(ce.type) ?? "",
    route: str(ce.jetwayroute),
    stream: str(ce.jetwaystream) ?? "",
    seq: int(ce.jetwayseq, 0),
    delivery: int(ce.jetwaydelivery, 1),
    maxDeliver: int(ce.jetwaymaxdeliver, undefined),
    time: str(ce.time),
    traceparent: str(ce.traceparent),
  };
  if (ce.specversion !== "1.0") return { ok: false, id, meta, reason: "specversion must be 1.0" };
  if (!meta.subject) return { ok: false, id, meta, reason: "missing type" };
  if (ce.data === undefined && typeof ce.data_base64 === "string") {
    // A payload that was not JSON on the stream arrives base64-encoded; it still has to parse as JSON.
    let text: string;
    try {
      const bytes = Uint8Array.from(atob(ce.data_base64), (ch) => ch.charCodeAt(0));
      text = strictUtf8.decode(bytes);
    } catch {
      // Decoded leniently, its bad bytes would become U+FFFD: data that was never published.
      return { ok: false, id, meta, reason: "data_base64 is not base64 of UTF-8 text" };
    }
    try {
      return { ok: true, meta, data: JSON.parse(text) };
    } catch (err) {
      return { ok: false, id, meta, reason: `invalid JSON: ${(err as Error).message}` };
    }
  }
  return { ok: true, meta, data: ce.data };
}

/** "orders.created.v1: items.0.quantity: Too small…; currency: …" — every failing path, named. */
export function describeIssues(subject: string, error: z.ZodError): string {
  const issues = error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`);
  return `${subject}: ${issues.join("; ")}`;
}

/** Validates incoming data against its type; a mismatch is the sender's fault (422). */
export function parseData<T extends EventType>(type: T, data: unknown): EventData<T> {
  const result = type.schema.safeParse(data);
  if (!result.success) {
    throw new DeliveryError(422, "invalid_event", describeIssues(type.subject, result.error), {
      cause: result.error,
    });
  }
  return result.data as EventData<T>;
}
