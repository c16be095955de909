/**
 * The bridge ⇄ function invocation contract: header names and the request signature.
 * Shared by the bridge (which sends) and functions (which receive); runs on Node, Workers and Lambda.
 */

import { nodeCrypto, toHex } from "./hashing.ts";

export const HEADERS = {
  route: "x-jetway-route",
  stream: "x-jetway-stream",
  seq: "x-jetway-seq",
  delivery: "x-jetway-delivery",
  maxDeliver: "x-jetway-max-deliver",
  signature: "x-jetway-signature",
  ceSpecVersion: "ce-specversion",
  ceId: "ce-id",
  ceSource: "ce-source",
  ceType: "ce-type",
  ceTime: "ce-time",
  traceparent: "traceparent",
  tracestate: "tracestate",
  msgId: "nats-msg-id",
} as const;

/**
 * Responses. Single delivery (binary-mode CloudEvent: attributes in the headers above, JSON data as body):
 *   200 `{ "events": [{ "subject", "data", "id"?, "headers"? }] }` → publish each event, then ack.
 *   400 unreadable (bad JSON, missing ce-id/ce-type) · 401 bad signature · 422 invalid data or no handler
 *   (dead-letter) · 503 retry, honouring `Retry-After` seconds · 500 failure (retry). Error bodies are
 *   `{ "error": { "code", "message" } }`. An emitted event without `id` gets Nats-Msg-Id `<input id>:<index>`.
 *
 * Batch delivery: `content-type: application/cloudevents-batch+json`, body = JSON array of structured-mode
 * CloudEvents `{ specversion: "1.0", id, source, type (subject), time, datacontenttype: "application/json",
 * data, jetwayroute, jetwaystream, jetwayseq, jetwaydelivery, jetwaymaxdeliver, traceparent? }` (a payload
 * that is not JSON may come as `data_base64`). Ids must be unique within the batch. The signature covers the
 * whole body. Answer:
 *   200 `{ "failures": [{ "id", "reason", "retry_after"?, "dead_letter"? }],
 *          "events": { "<input id>": [{ "subject", "data", "id"?, "headers"? }] } }`
 * Every message not in `failures` succeeded: publish its events, then ack it. A failure with
 * `dead_letter: true` is dead-lettered now; otherwise it is retried (nak, delayed `retry_after` seconds when
 * given). Failed messages never have events. A non-200 answer (400 malformed batch, 401, 500…) applies to
 * every message of the batch as it would to a single delivery.
 */

/** Content type of a batch delivery: a JSON array of structured-mode CloudEvents. */
export const BATCH_CONTENT_TYPE = "application/cloudevents-batch+json";

/** How far a signature's timestamp may be from now before the request counts as replayed. */
export const DEFAULT_SIGNATURE_TOLERANCE_S = 300;

const encoder = new TextEncoder();

/** Imported keys by secret: a function sees one or two secrets, and importKey on every request is waste. */
type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
const keys = new Map<string, Promise<HmacKey>>();
const MAX_CACHED_KEYS = 16;

function hmacKey(secret: string): Promise<HmacKey> {
  let key = keys.get(secret);
  if (!key) {
    if (keys.size >= MAX_CACHED_KEYS) keys.clear();
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
    keys.set(secret, key);
  }
  return key;
}

/** A single delivery's id and type: headers (`ce-id`, `ce-type`), so outside the body a `v1` signature covers. */
export interface DeliveryIdentity {
  id: string;
  type: string;
}

/** The `v1` text: `<t>.<body>` (a batch, for functions built before `b1`), `<t>.<path>.<body>` for the ingress. */
function signedPrefix(timestamp: number, path: string | undefined): string {
  return path === undefined ? `${timestamp}.` : `${timestamp}.${path}.`;
}

/**
 * A batch's `b1` text: `batch\n<t>\n<body>`. Every other signed text starts with the timestamp, so no
 * single delivery's signature (whose body a producer chooses) can pass for a batch's, whose body names
 * each event's id and type.
 */
export function batchPrefix(timestamp: number): string {
  return `batch\n${timestamp}\n`;
}

/**
 * A single delivery's `v2` text: `<t>\n<ce-id>\n<ce-type>\n<body>`. Header values cannot hold a line break,
 * so no id and type can be shifted into one another.
 */
export function deliveryPrefix(timestamp: number, { id, type }: DeliveryIdentity): string {
  return `${timestamp}\n${id}\n${type}\n`;
}

async function hmacHex(secret: string, prefix: string, body: Uint8Array | string): Promise<string> {
  if (nodeCrypto) return nodeCrypto.createHmac("sha256", secret).update(prefix).update(body).digest("hex");
  const key = await hmacKey(secret);
  const head = encoder.encode(prefix);
  const bodyBytes = typeof body === "string" ? encoder.encode(body) : body;
  const message = new Uint8Array(head.length + bodyBytes.length);
  message.set(head, 0);
  message.set(bodyBytes, head.length);
  return toHex(await crypto.subtle.sign("HMAC", key, message));
}

/**
 * A batch delivery's signature: `x-jetway-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">,
 * b1=<hex HMAC-SHA256 of "batch\n<t>\n<body>">`. The events' ids and types are in the body; `b1` says the
 * body is a batch, and is what a function of this version checks (`v1` is for functions built before it).
 * The timestamp is signed with the body so a captured request cannot be replayed later.
 */
export async function signBatch(
  secret: string,
  body: Uint8Array | string,
  nowS = Math.floor(Date.now() / 1000),
) {
  const v1 = await hmacHex(secret, signedPrefix(nowS, undefined), body);
  return `t=${nowS},v1=${v1},b1=${await hmacHex(secret, batchPrefix(nowS), body)}`;
}

/** The name `signBatch` had before batches were signed with `b1`. */
export const signPayload = signBatch;

/**
 * A single delivery's signature, as the bridge sends it: `t=<t>,v2=<hex HMAC-SHA256 of deliveryPrefix +
 * body>`. `v2` binds the event's id and type to the body, so a captured delivery cannot come back under
 * another id (past a function's idempotency check) or type. No `v1`: over a body a producer chose, it
 * would let the delivery pass for a batch of events of its making at a function built before `b1`.
 */
export async function signDelivery(
  secret: string,
  identity: DeliveryIdentity,
  body: Uint8Array | string,
  nowS = Math.floor(Date.now() / 1000),
) {
  return `t=${nowS},v2=${await hmacHex(secret, deliveryPrefix(nowS, identity), body)}`;
}

/**
 * The signature of a request to the bridge's ingress (`POST /v1/publish…`): the same header, with the
 * request path signed between the timestamp and the body, `<t>.<path>.<body>`. The path binds a
 * single-subject publish to its subject, and a delivery's signature can never pass as a publish (nor
 * the reverse) where one secret serves both.
 */
export async function signIngressRequest(
  secret: string,
  path: string,
  body: Uint8Array | string,
  nowS = Math.floor(Date.now() / 1000),
) {
  return `t=${nowS},v1=${await hmacHex(secret, signedPrefix(nowS, path), body)}`;
}

export type SignatureFailure = "missing" | "malformed" | "expired" | "mismatch" | "unbound";

/** What is signed, and under which part: a batch (`b1`), a single delivery (`v2`), an ingress request (`v1`). */
function signedText(
  t: number,
  parts: Map<string, string>,
  options: Pick<VerifyOptions, "path" | "identity">,
) {
  if (options.identity) {
    return {
      prefix: deliveryPrefix(t, options.identity),
      expected: parts.get("v2"),
      part: "v2",
      covers: "the event's id and type",
    };
  }
  if (options.path !== undefined) {
    return {
      prefix: signedPrefix(t, options.path),
      expected: parts.get("v1"),
      part: "v1",
      covers: "the request's path",
    };
  }
  return { prefix: batchPrefix(t), expected: parts.get("b1"), part: "b1", covers: "the body as a batch" };
}

/** Why a signature was rejected; functions answer 401 with this reason. */
export class SignatureError extends Error {
  override name = "SignatureError";
  readonly reason: SignatureFailure;
  constructor(reason: SignatureFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

async function someAsync(keys: readonly string[], test: (key: string) => Promise<boolean>) {
  for (const key of keys) if (await test(key)) return true;
  return false;
}

function timingSafeEqualHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export interface VerifyOptions {
  toleranceS?: number;
  nowS?: number;
  /** An ingress request's path: verifies a `signIngressRequest` signature instead of a delivery's. */
  path?: string | undefined;
  /** A single delivery's id and type: verifies its `v2` (signDelivery), which must be there. */
  identity?: DeliveryIdentity | undefined;
}

/**
 * Throws SignatureError unless `header` is a valid, fresh signature of `body` under `secret`, or under any
 * one of several: while a key is rotated the receiver accepts the new one and the old. With `identity` it
 * checks a single delivery's `v2`, with `path` an ingress request's `v1`, with neither a batch's `b1`.
 */
export async function verifySignature(
  secret: string | readonly string[],
  body: Uint8Array | string,
  header: string | null | undefined,
  {
    toleranceS = DEFAULT_SIGNATURE_TOLERANCE_S,
    nowS = Math.floor(Date.now() / 1000),
    path,
    identity,
  }: VerifyOptions = {},
): Promise<void> {
  if (!header) throw new SignatureError("missing", `missing ${HEADERS.signature} header`);
  const parts = new Map(header.split(",").map((p) => p.trim().split("=", 2) as [string, string]));
  const t = Number(parts.get("t"));
  if (!Number.isInteger(t) || !["v1", "v2", "b1"].some((p) => parts.get(p)))
    throw new SignatureError("malformed", `malformed ${HEADERS.signature} header`);
  const { prefix, expected, part, covers } = signedText(t, parts, { path, identity });
  if (!expected) {
    throw new SignatureError(
      "unbound",
      `signature does not cover ${covers} (no ${part}): signed for another kind of request, or by a bridge older than this function`,
    );
  }
  if (Math.abs(nowS - t) > toleranceS) {
    throw new SignatureError(
      "expired",
      `signature timestamp is ${nowS - t}s from now (tolerance ${toleranceS}s)`,
    );
  }
  const matches = async (key: string) => timingSafeEqualHex(await hmacHex(key, prefix, body), expected);
  if (typeof secret === "string" ? await matches(secret) : await someAsync(secret, matches)) return;
  throw new SignatureError(
    "mismatch",
    identity ? "signature does not match the body, id and type" : "signature does not match the body",
  );
}
