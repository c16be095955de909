import type { JsMsg, PubAck } from "@nats-io/jetstream";
import { type MsgHdrs, headers as natsHeaders } from "@nats-io/nats-core";
import { DLQ_HEADERS, deadLetterMsgId, deadLetterSubject } from "./dead-letter-headers.ts";
import type { MessageStore } from "./js-publisher.ts";

/** Longest response excerpt a dead letter carries. */
export const MAX_EXCERPT_BYTES = 1024;

/** A dead letter could not be published; the original must then be nak'ed, never acked or termed. */
export class DeadLetterError extends Error {
  override name = "DeadLetterError";
}

export interface DeadLetter {
  msg: JsMsg;
  route: string;
  url: string;
  /** dead_letter.subject_prefix */
  prefix: string;
  delivery: number;
  reason: string;
  status?: number | undefined;
  /** The function's response body (any length; cut here). */
  response?: string | undefined;
}

/** Header values are one line of text: control characters (CR/LF above all) become spaces. */
export function singleLine(text: string, maxBytes: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  let line = text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  if (line.length > maxBytes) line = line.slice(0, maxBytes);
  while (Buffer.byteLength(line) > maxBytes) line = line.slice(0, -1);
  return line;
}

/** The original headers (minus Nats-* server directives) plus the DLQ_HEADERS vocabulary. */
export function deadLetterHeaders(letter: DeadLetter, now = new Date()): MsgHdrs {
  const { msg } = letter;
  const h = natsHeaders();
  let contentType = "";
  if (msg.headers) {
    for (const [key, values] of msg.headers) {
      if (key.toLowerCase() === "content-type") contentType = values[0] ?? "";
      if (/^nats-/i.test(key)) continue;
      for (const value of values) h.append(key, value);
    }
  }
  const msgId = msg.headers?.get("Nats-Msg-Id");
  h.set(DLQ_HEADERS.reason, singleLine(letter.reason, 4 * MAX_EXCERPT_BYTES) || "unknown");
  if (letter.status !== undefined) h.set(DLQ_HEADERS.status, String(letter.status));
  const excerpt = letter.response ? singleLine(letter.response, MAX_EXCERPT_BYTES) : "";
  if (excerpt) h.set(DLQ_HEADERS.response, excerpt);
  h.set(DLQ_HEADERS.route, letter.route);
  h.set(DLQ_HEADERS.url, letter.url);
  h.set(DLQ_HEADERS.subject, msg.subject);
  h.set(DLQ_HEADERS.stream, msg.info.stream);
  h.set(DLQ_HEADERS.seq, String(msg.seq));
  h.set(DLQ_HEADERS.delivery, String(letter.delivery));
  h.set(DLQ_HEADERS.publishedAt, msg.timestamp);
  h.set(DLQ_HEADERS.deadLetteredAt, now.toISOString());
  h.set(DLQ_HEADERS.contentType, contentType || "application/json");
  if (msgId) h.set(DLQ_HEADERS.msgId, msgId);
  return h;
}

/**
 * Publishes the original payload to `<prefix>.<route>` in the DLQ stream and waits for the PubAck.
 * The msg id is per original message, so a retried dead-lettering is deduplicated.
 */
export async function publishDeadLetter(js: MessageStore, letter: DeadLetter): Promise<PubAck> {
  const { msg } = letter;
  try {
    return await js.publish(deadLetterSubject(letter.prefix, letter.route), msg.data, {
      msgID: deadLetterMsgId(letter.route, msg.info.stream, msg.seq),
      headers: deadLetterHeaders(letter),
    });
  } catch (cause) {
    throw new DeadLetterError(
      `dead-lettering ${msg.info.stream}:${msg.seq} of route ${letter.route} failed: ${(cause as Error).message}`,
      { cause },
    );
  }
}
