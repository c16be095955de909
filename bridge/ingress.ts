import { JetStreamApiError, type JetStreamClient } from "@nats-io/jetstream";
import { errors, type NatsConnection, headers as natsHeaders } from "@nats-io/nats-core";
import type { Context } from "hono";
import type pino from "pino";
import type { Config } from "./config.ts";
import { type RequestView, requestView } from "./node-request.ts";
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
  js: JetStreamClient;
  http: Config["http"];
  /** Live connection flag (watchStatus): fail fast with 503 instead of waiting for a timeout. */
  connected: () => boolean;
  logger: pino.Logger;
  publishTimeoutMs?: number;
  /** Publishes of one turn leave in one socket write (see TurnBatch). */
  publishes?: TurnBatch;
}

// JetStream API, system and inbox subjects are never a publish target from the outside.
const RESERVED = /^(\$|_INBOX\.)/;
const VALID_SUBJECT = /^[^\s*>]+$/;
// JetStream error code for "message size exceeds maximum allowed".
const MESSAGE_TOO_LARGE = 10054;

function checkAuth(req: RequestView, token: string | undefined): void {
  if (!token) return;
  const header = req.header("authorization");
  if (!header) throw new IngressError(401, "unauthorized", "missing Authorization: Bearer token");
  const given = header.startsWith("Bearer ") ? header.slice(7) : "";
  if (!timingSafeEqual(given, token)) throw new IngressError(403, "forbidden", "invalid publish token");
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
  if (error instanceof JetStreamApiError) {
    if (error.code === MESSAGE_TOO_LARGE)
      return new IngressError(413, "too_large", "message exceeds the stream's max_msg_size", {
        cause: error,
      });
    if (error.status === 503)
      return new IngressError(404, "no_stream", "no stream is bound to this subject", { cause: error });
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
  if (!subject || !VALID_SUBJECT.test(subject) || RESERVED.test(subject) || subject.split(".").includes("")) {
    throw new IngressError(400, "invalid_subject", "invalid subject (no wildcards, spaces, $ or _INBOX)");
  }
  const limit = limitOf(deps);
  const tooLarge = () => new IngressError(413, "too_large", `body exceeds ${limit} bytes`);
  if (Number(req.header("content-length") ?? 0) > limit) throw tooLarge();
  const body = await req.body(limit, tooLarge);
  if (!deps.connected() || deps.nc.isClosed()) {
    throw new IngressError(503, "nats_unavailable", "NATS is not reachable");
  }
  const h = natsHeaders();
  const contentType = req.header("content-type");
  if (contentType) h.set("Content-Type", contentType);
  for (const name of ["traceparent", "tracestate"]) {
    const value = req.header(name);
    if (value) h.set(name, value);
  }
  const msgID = req.header("idempotency-key");
  try {
    const publish = () =>
      deps.js.publish(subject, body, {
        headers: h,
        timeout: deps.publishTimeoutMs ?? 5_000,
        ...(msgID ? { msgID } : {}),
      });
    const ack = await (deps.publishes ? deps.publishes.run(publish) : publish());
    return c.json({ stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate }, 202);
  } catch (error) {
    const failure = classify(error);
    if (failure.status >= 500) deps.logger.warn({ err: error, subject }, "ingress publish failed");
    throw failure;
  }
}
