import type { JsMsg } from "@nats-io/jetstream";
import type { RouteConfig } from "./config.ts";
import type { Delivery } from "./events.ts";
import { ceTime } from "./iso-time.ts";
import {
  decideOutcome,
  failedAttempt,
  type InvocationResult,
  type Outcome,
  type OutcomeClock,
  type OutcomePolicy,
  readEventList,
} from "./outcome.ts";

/**
 * Batch delivery, the pure half: a batch of messages → one JSON body of structured-mode CloudEvents, and
 * one response → an outcome per message (see the batch section of functions/sdk/contract.ts).
 */

export interface BatchMessage {
  msg: JsMsg;
  d: Delivery;
}

/** One entry of a batch answer's `failures`. */
export interface BatchFailure {
  id: string;
  reason: string;
  retry_after?: number | undefined;
  dead_letter?: boolean | undefined;
}

export interface BatchAnswer {
  failures: Map<string, BatchFailure>;
  /** Raw per-id event lists; each is validated like a single delivery's `events`. */
  events: Record<string, unknown>;
}

type RouteAttrs = Pick<RouteConfig, "name" | "stream" | "max_deliver">;

/**
 * Payloads are checked as the bytes that get spliced: invalid UTF-8 throws instead of becoming U+FFFD, and
 * a byte-order mark stays in the text (JSON.parse refuses it) instead of being dropped by the decoder.
 */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A JSON string literal (quotes and escapes included). */
const quote = (text: string): string => JSON.stringify(text);

/** The attributes every message of a route shares, as JSON members; built once per route. */
const routeMembers = new WeakMap<RouteAttrs, string>();
function membersOf(route: RouteAttrs): string {
  let members = routeMembers.get(route);
  if (members === undefined) {
    members =
      `"source":${quote(`jetway://${route.stream}`)},"jetwayroute":${quote(route.name)},` +
      `"jetwaymaxdeliver":${route.max_deliver}`;
    routeMembers.set(route, members);
  }
  return members;
}

/**
 * One message's structured-mode CloudEvent in up to two pieces: the JSON text up to `data`, and the payload
 * bytes to follow it as they are. JSON payloads become `data` (spliced in unchanged once checked:
 * stringifying a parsed value again would only copy them, and would round numbers beyond 2^53), anything
 * else `data_base64` inside the text. Written member by member rather than through an object and
 * JSON.stringify: this runs for every message of every batch.
 */
function cloudEventParts(m: BatchMessage, route: RouteAttrs): [text: string, payload?: Uint8Array] {
  const { msg, d } = m;
  const contentType = msg.headers?.get("Content-Type") || "application/json";
  let head =
    `{"specversion":"1.0","id":${quote(d.id)},"type":${quote(msg.subject)},"time":"${ceTime(msg)}",` +
    `"datacontenttype":${quote(contentType)},${membersOf(route)},"jetwaystream":${quote(d.stream)},` +
    `"jetwayseq":${d.seq},"jetwaydelivery":${d.delivery}`;
  if (d.traceparent) head += `,"traceparent":${quote(d.traceparent)}`;
  const tracestate = msg.headers?.get("tracestate");
  if (tracestate) head += `,"tracestate":${quote(tracestate)}`;
  if (contentType.includes("json") && msg.data.length > 0) {
    try {
      JSON.parse(strictUtf8.decode(msg.data));
      return [`${head},"data":`, msg.data];
    } catch {
      // Declared JSON but not one JSON text in UTF-8: the bytes go as data_base64, exactly as they are,
      // and the function may refuse them; spliced in, they would spoil the whole body.
    }
  }
  const base64 = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.length).toString("base64");
  return [`${head},"data_base64":"${base64}"`];
}

/**
 * The whole request body: a JSON array of the messages' CloudEvents, written into one buffer (payloads
 * copied byte for byte, never decoded into the body's text and encoded again).
 */
export function encodeBatch(messages: readonly BatchMessage[], route: RouteAttrs): Buffer {
  const parts = messages.map((m) => cloudEventParts(m, route));
  // "[" and "]", the commas between events, each event's closing "}".
  let size = 2 + Math.max(0, parts.length - 1) + parts.length;
  for (const [text, payload] of parts) size += Buffer.byteLength(text) + (payload?.length ?? 0);
  const body = Buffer.allocUnsafe(size);
  let at = body.write("[");
  for (let i = 0; i < parts.length; i++) {
    const [text, payload] = parts[i] as [string, Uint8Array?];
    if (i > 0) at += body.write(",", at);
    at += body.write(text, at);
    if (payload) {
      body.set(payload, at);
      at += payload.length;
    }
    at += body.write("}", at);
  }
  body.write("]", at);
  return body;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Validates a 2xx batch answer; returns an error text when it is not the format. */
export function readBatchAnswer(body: unknown): BatchAnswer | string {
  if (!isObject(body)) return "not a JSON object";
  const { failures, events } = body;
  if (!Array.isArray(failures)) return "failures must be an array";
  if (events !== undefined && !isObject(events)) return "events must be an object keyed by input id";
  const out = new Map<string, BatchFailure>();
  for (let i = 0; i < failures.length; i++) {
    const f: unknown = failures[i];
    if (!isObject(f) || typeof f.id !== "string" || f.id.length === 0) {
      return `failures[${i}].id must be a non-empty string`;
    }
    const { reason, retry_after, dead_letter } = f;
    if (reason !== undefined && typeof reason !== "string") return `failures[${i}].reason must be a string`;
    if (retry_after !== undefined && !(typeof retry_after === "number" && retry_after >= 0)) {
      return `failures[${i}].retry_after must be a number of seconds >= 0`;
    }
    if (dead_letter !== undefined && typeof dead_letter !== "boolean") {
      return `failures[${i}].dead_letter must be a boolean`;
    }
    out.set(f.id, {
      id: f.id,
      reason: reason || "failed in batch (no reason given)",
      retry_after,
      dead_letter,
    });
  }
  return { failures: out, events: events ?? {} };
}

/** The outcome of one message the function listed in `failures`. */
function failureOutcome(f: BatchFailure, delivery: number, policy: OutcomePolicy, clock?: OutcomeClock) {
  if (f.dead_letter) return { kind: "dead_letter", reason: f.reason } as const;
  const asked = f.retry_after === undefined ? undefined : f.retry_after * 1_000;
  return failedAttempt(f.reason, delivery, asked, policy, clock);
}

/**
 * The answer, or why it is not one for this batch: a failure or events under an id the batch did not send
 * (a typo, another id scheme) would otherwise be dropped without a trace while every message is acked.
 */
function foreignId(
  answer: BatchAnswer | string,
  deliveries: readonly Pick<Delivery, "id">[],
): BatchAnswer | string {
  if (typeof answer === "string") return answer;
  const eventIds = Object.keys(answer.events);
  if (answer.failures.size === 0 && eventIds.length === 0) return answer;
  const sent = new Set(deliveries.map((d) => d.id));
  for (const id of answer.failures.keys()) {
    if (!sent.has(id)) return `failures name ${JSON.stringify(id.slice(0, 100))}, not an id of this batch`;
  }
  for (const id of eventIds) {
    if (!sent.has(id)) return `events name ${JSON.stringify(id.slice(0, 100))}, not an id of this batch`;
  }
  return answer;
}

/**
 * Decides every message of a batch from one response. A 2xx must carry the batch answer: messages not in
 * `failures` are acked with their events. Anything else (non-2xx, timeout, transport error) applies to each
 * message as it would to a single delivery, with that message's own delivery count.
 */
export function decideBatch(
  result: InvocationResult,
  deliveries: readonly Pick<Delivery, "id" | "delivery">[],
  policy: OutcomePolicy,
  clock?: OutcomeClock,
): Outcome[] {
  const { status } = result;
  if (status === undefined || status < 200 || status >= 300) {
    return deliveries.map((d) => decideOutcome(result, d.delivery, policy, clock));
  }
  const answer = result.truncated
    ? "too large to read"
    : result.malformed
      ? "body is not valid JSON"
      : foreignId(readBatchAnswer(result.body), deliveries);
  if (typeof answer === "string") {
    const why = `malformed batch response (HTTP ${status}): ${answer}`;
    return deliveries.map((d) => failedAttempt(why, d.delivery, undefined, policy, clock));
  }
  return deliveries.map((d): Outcome => {
    const failure = answer.failures.get(d.id);
    if (failure) return failureOutcome(failure, d.delivery, policy, clock);
    const raw = Object.hasOwn(answer.events, d.id) ? answer.events[d.id] : undefined;
    const events = readEventList(raw);
    if (typeof events === "string") return { kind: "dead_letter", reason: `invalid response: ${events}` };
    return { kind: "ack", events };
  });
}
