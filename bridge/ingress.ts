import { JetStreamApiCodes, JetStreamApiError, type PubAck } from "@nats-io/jetstream";
import { errors, type MsgHdrs, type NatsConnection, headers as natsHeaders } from "@nats-io/nats-core";
import type { Context } from "hono";
import type pino from "pino";
import { HEADERS, SignatureError, verifySignature } from "../functions/sdk/contract.ts";
import type { Config } from "./config.ts";
import type { MessageStore } from "./js-publisher.ts";
import { type RequestView, requestView } from "./node-request.ts";
import { type EmittedEvent, field, readEventList } from "./outcome.ts";
import { eventData, eventHeaders, isTooLarge } from "./publisher.ts";
import { isDeadLetterSubject, isReservedSubject } from "./subjects.ts";
import type { PublishSpan, Telemetry, TraceContext } from "./telemetry.ts";
import type { TurnBatch } from "./turn-batch.ts";

/** A failed ingress request: the HTTP status and a stable code; the message is safe to show a caller. */
export class IngressError extends Error {
  override name = "IngressError";
  readonly status: 400 | 401 | 403 | 404 | 413 | 502 | 503;
  readonly code: string;
  constructor(status: IngressError["status"], code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
    this.code = code;
  }
}

export interface IngressDeps {
  nc: NatsConnection;
  /** Where publishes go: the bridge's JetStreamPublisher. */
  store: MessageStore;
  http: Config["http"];
  /** dead_letter.subject_prefix: subjects the ingress refuses. */
  deadLetterPrefix: string;
  /** Live connection flag (watchStatus): fail fast with 503 instead of waiting for a timeout. */
  connected: () => boolean;
  logger: pino.Logger;
  publishTimeoutMs?: number;
  /** Publishes of one turn leave in one socket write (see TurnBatch). */
  publishes?: TurnBatch;
  /** Tracing on: a producer span per request (telemetry.ts), whose context the messages carry. */
  startPublish?: Telemetry["startPublish"];
}

const untraced = (trace: TraceContext): PublishSpan => ({ trace, end: () => {} });

const VALID_SUBJECT = /^[^\s*>]+$/;
/** Most events one `POST /v1/publish` may carry. */
export const MAX_BATCH_EVENTS = 1_000;

/** A subject the ingress publishes to: concrete, not reserved, no empty tokens. */
const isPublishable = (subject: string): boolean =>
  VALID_SUBJECT.test(subject) && !isReservedSubject(subject) && !subject.split(".").includes("");

/** Dead letters are the bridge's record of what failed, and redrive trusts them: none comes from outside. */
function refuseDeadLetterSubject(subject: string, deps: IngressDeps, where = "subject"): void {
  if (isDeadLetterSubject(subject, deps.deadLetterPrefix)) {
    throw new IngressError(
      400,
      "invalid_subject",
      `${where} ${subject} is a dead-letter subject (${deps.deadLetterPrefix}.>): only the bridge publishes there`,
    );
  }
}

function checkAuth(req: RequestView, token: string | undefined): void {
  if (!token) return;
  const header = req.header("authorization");
  if (!header) throw new IngressError(401, "unauthorized", "missing Authorization: Bearer token");
  // The scheme is case-insensitive (RFC 9110): "bearer tok" is the same credential.
  const given = /^bearer /i.test(header) ? header.slice(7) : "";
  if (!timingSafeEqual(given, token)) throw new IngressError(403, "forbidden", "invalid publish token");
}

/**
 * With `http.publish_secret`, the request must carry a fresh `x-jetway-signature` of `<t>.<path>.<body>`
 * (signIngressRequest in functions/sdk/contract.ts), where the path names the subject as it is published.
 */
async function checkSignature(
  req: RequestView,
  secret: string | readonly string[],
  path: string,
  body: Uint8Array,
) {
  try {
    await verifySignature(secret, body, req.header(HEADERS.signature), { path });
  } catch (error) {
    if (error instanceof SignatureError) throw new IngressError(401, "invalid_signature", error.message);
    throw error;
  }
}

function timingSafeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function limitOf(deps: IngressDeps): number {
  const serverMax = deps.nc.info?.max_payload ?? 1_048_576;
  return Math.min(serverMax, deps.http.max_body ?? Number.POSITIVE_INFINITY);
}

/** The whole body, or 413 as soon as it passes the limit (by Content-Length, or while reading). */
function readBody(req: RequestView, deps: IngressDeps): Promise<Uint8Array> {
  const limit = limitOf(deps);
  const tooLarge = () => new IngressError(413, "too_large", `body exceeds ${limit} bytes`);
  if (Number(req.header("content-length") ?? 0) > limit) throw tooLarge();
  return req.body(limit, tooLarge);
}

function ensureConnected(deps: IngressDeps): void {
  if (!deps.connected() || deps.nc.isClosed()) {
    throw new IngressError(503, "nats_unavailable", "NATS is not reachable");
  }
}

/** No stream listens on the subject: nats.js wraps the no-responders RequestError (JetStreamNotEnabled). */
function isNoResponders(error: unknown): boolean {
  const cause = error instanceof Error ? error.cause : undefined;
  return (
    (error instanceof errors.RequestError && error.isNoResponders()) ||
    (cause instanceof errors.RequestError && cause.isNoResponders())
  );
}

function classify(error: unknown): IngressError {
  if (error instanceof IngressError) return error;
  if (isNoResponders(error)) {
    return new IngressError(404, "no_stream", "no stream is bound to this subject", { cause: error });
  }
  if (isTooLarge(error)) {
    const limit =
      error instanceof JetStreamApiError ? "the stream's max_msg_size" : "the server's max_payload";
    return new IngressError(413, "too_large", `message with its headers exceeds ${limit}`, { cause: error });
  }
  if (error instanceof JetStreamApiError) {
    if (error.code === JetStreamApiCodes.StreamNotFound)
      return new IngressError(404, "no_stream", "no stream is bound to this subject", { cause: error });
    // A full stream (max_msgs / max_bytes with discard: new), a store out of space: a try later may work.
    if (error.status === 503) {
      const why = `JetStream could not store the message: ${error.message}`;
      return new IngressError(503, "stream_unavailable", why, { cause: error });
    }
    return new IngressError(502, "jetstream_error", "JetStream rejected the message", { cause: error });
  }
  if (
    error instanceof errors.TimeoutError ||
    error instanceof errors.ClosedConnectionError ||
    error instanceof errors.DrainingConnectionError ||
    error instanceof errors.RequestError
  ) {
    return new IngressError(503, "nats_unavailable", "NATS is not reachable", { cause: error });
  }
  return new IngressError(502, "publish_failed", "publish failed", { cause: error });
}

function decodeSubject(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return "";
  }
}

/** POST /v1/publish/<subject>: the raw body into JetStream, answering 202 { stream, seq, duplicate }. */
export async function handlePublish(c: Context, deps: IngressDeps): Promise<Response> {
  const req = requestView(c);
  checkAuth(req, deps.http.publish_token);
  const subject = decodeSubject(c.req.path.slice("/v1/publish/".length));
  if (!isPublishable(subject)) {
    throw new IngressError(400, "invalid_subject", "invalid subject (no wildcards, spaces, $ or _INBOX)");
  }
  refuseDeadLetterSubject(subject, deps);
  const body = await readBody(req, deps);
  const secret = deps.http.publish_secret;
  if (secret) await checkSignature(req, secret, `/v1/publish/${subject}`, body);
  ensureConnected(deps);
  const h = natsHeaders();
  const contentType = req.header("content-type");
  if (contentType) h.set("Content-Type", contentType);
  const span = startPublish(deps, subject, req);
  if (span.trace.traceparent) h.set("traceparent", span.trace.traceparent);
  if (span.trace.tracestate) h.set("tracestate", span.trace.tracestate);
  const msgID = req.header("idempotency-key");
  try {
    const publish = () =>
      deps.store.publish(subject, body, {
        headers: h,
        timeout: deps.publishTimeoutMs ?? 5_000,
        ...(msgID ? { msgID } : {}),
      });
    const ack = await (deps.publishes ? deps.publishes.run(publish) : publish());
    span.end();
    return c.json({ stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate }, 202);
  } catch (error) {
    const failure = classify(error);
    span.end(failure.message);
    if (failure.status >= 500) deps.logger.warn({ err: error, subject }, "ingress publish failed");
    throw failure;
  }
}

/** The request's trace context, or with tracing on that of a producer span under it. */
function startPublish(deps: IngressDeps, name: string, req: RequestView): PublishSpan {
  const caller = { traceparent: req.header("traceparent"), tracestate: req.header("tracestate") };
  return deps.startPublish ? deps.startPublish(name, caller) : untraced(caller);
}

/** One event of a batch, ready to publish. */
interface EventMessage {
  subject: string;
  data: Uint8Array;
  headers: MsgHdrs;
  msgID: string | undefined;
}

/** One entry of a batch answer, in request order. */
export type BatchResult =
  | { stream: string; seq: number; duplicate: boolean }
  | { error: { code: string; status: IngressError["status"]; message: string } };

const decoder = new TextDecoder("utf-8", { fatal: true });
const invalidBody = (message: string) => new IngressError(400, "invalid_body", message);

/** The events of a `{ "events": [...] }` body: subjects by the ingress rules, then as a function's events. */
function readBatch(body: Uint8Array): EmittedEvent[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(body));
  } catch (error) {
    throw invalidBody(`body is not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw invalidBody('body must be a JSON object { "events": [...] }');
  }
  const list = field(parsed, "events");
  const publishable = (event: unknown) => {
    const subject = field(event, "subject");
    return typeof subject === "string" && isPublishable(subject);
  };
  const bad = Array.isArray(list) ? list.findIndex((event) => !publishable(event)) : -1;
  if (bad >= 0) {
    throw new IngressError(
      400,
      "invalid_subject",
      `events[${bad}].subject is not publishable (a string without wildcards, spaces, empty tokens, $ or _INBOX)`,
    );
  }
  const events = readEventList(list);
  if (typeof events === "string") throw invalidBody(events);
  if (events.length === 0) throw invalidBody("events must list at least one event");
  if (events.length > MAX_BATCH_EVENTS) {
    throw invalidBody(`at most ${MAX_BATCH_EVENTS} events per request, got ${events.length}`);
  }
  return events;
}

/** An event as the bridge publishes a function's events (publisher.ts); `id` becomes Nats-Msg-Id. */
function eventMessage(event: EmittedEvent, trace: TraceContext): EventMessage {
  return {
    subject: event.subject,
    data: eventData(event),
    headers: eventHeaders(event, trace),
    msgID: event.id,
  };
}

function resultOf(settled: PromiseSettledResult<PubAck>): BatchResult {
  if (settled.status === "fulfilled") {
    const { stream, seq, duplicate } = settled.value;
    return { stream, seq, duplicate };
  }
  const { code, status, message } = classify(settled.reason);
  return { error: { code, status, message } };
}

/**
 * POST /v1/publish: `{ events: [{ subject, data, id?, headers? }] }` into JetStream, all started together.
 * 202 `{ results }` when every event was stored; 207 when some failed (failed entries carry `error`); when
 * all failed with one status, that status with the usual error body plus `results`.
 */
export async function handlePublishBatch(c: Context, deps: IngressDeps): Promise<Response> {
  const req = requestView(c);
  checkAuth(req, deps.http.publish_token);
  const body = await readBody(req, deps);
  const secret = deps.http.publish_secret;
  if (secret) await checkSignature(req, secret, "/v1/publish", body);
  const events = readBatch(body);
  for (const [i, event] of events.entries())
    refuseDeadLetterSubject(event.subject, deps, `events[${i}].subject`);
  ensureConnected(deps);
  const span = startPublish(deps, events.length === 1 ? (events[0]?.subject ?? "") : "events", req);
  const messages = events.map((event) => eventMessage(event, span.trace));
  const timeout = deps.publishTimeoutMs ?? 5_000;
  const publishAll = () =>
    Promise.allSettled(
      messages.map((m) =>
        deps.store.publish(m.subject, m.data, {
          headers: m.headers,
          timeout,
          ...(m.msgID ? { msgID: m.msgID } : {}),
        }),
      ),
    );
  const settled = await (deps.publishes ? deps.publishes.run(publishAll) : publishAll());
  const results = settled.map(resultOf);
  const failed = results.flatMap((r) => ("error" in r ? [r.error] : []));
  const first = failed[0];
  span.end(
    first ? `${failed.length} of ${results.length} events not published: ${first.message}` : undefined,
  );
  if (!first) return c.json({ results }, 202);

  const unavailable = results.findIndex((r) => "error" in r && r.error.status >= 500);
  const cause = settled[unavailable];
  if (cause?.status === "rejected") {
    deps.logger.warn(
      {
        err: cause.reason,
        subject: messages[unavailable]?.subject,
        failed: failed.length,
        events: results.length,
      },
      "ingress batch publish failed",
    );
  }
  if (failed.length === results.length && failed.every((f) => f.status === first.status)) {
    return c.json({ error: { code: first.code, message: first.message }, results }, first.status);
  }
  return c.json({ results }, 207);
}
